"""The error frame of contract v1: its codes, the close codes, and `FrameError`, what a
bad client frame raises (domain/frames.py re-exports them all)."""

from __future__ import annotations

import json
from typing import Any

import orjson


def dump_frame(obj: dict[str, Any]) -> str:
    """A server frame as JSON text: one encoding per frame, however many sockets.

    orjson writes the same compact JSON as `json.dumps(ensure_ascii=False)` for what
    frames hold (strings, integers, lists, objects), about five times faster: an ack is
    one of these per message. What orjson refuses (a lone surrogate, an integer past 64
    bits, a key that is not a string) goes through the standard library as before."""
    try:
        return orjson.dumps(obj).decode()
    except orjson.JSONEncodeError:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class ErrorCode:
    """Codes of the `error` frame. Stable: clients and bots switch on them."""

    # The frame itself is malformed.
    INVALID_JSON = "invalid_json"  # not UTF-8 JSON, not an object, or nested too deep
    UNKNOWN_TYPE = "unknown_type"  # `type` is missing a known value
    MISSING_FIELD = "missing_field"  # a required field is absent or of the wrong JSON type
    # A field is there but its value breaks a rule.
    EMPTY_BODY = "empty_body"  # nothing left after trimming
    BODY_TOO_LONG = "body_too_long"  # over the configured characters (4,000 by default)
    INVALID_BODY = "invalid_body"  # a lone surrogate: not valid Unicode
    INVALID_CLIENT_ID = "invalid_client_id"  # not 1-64 printable ASCII characters
    INVALID_SINCE = "invalid_since"  # not a stream id like 1655188547271-0
    INVALID_ID = "invalid_id"  # a read's id is not a stream id
    INVALID_TARGET = "invalid_target"  # target or reply_to is not a stream id
    INVALID_EMOJI = "invalid_emoji"  # a reaction is not one emoji
    INVALID_REASON = "invalid_reason"  # a delete's reason is not text of at most 500 chars
    # The room.
    ROOM_NOT_FOUND = "room_not_found"  # no such room, or a private room you are not in
    FORBIDDEN = "forbidden"  # the room exists and is visible, but this is not allowed
    # An edit, delete, reaction or reply names no message of this room.
    MESSAGE_NOT_FOUND = "message_not_found"
    # The server.
    RATE_LIMITED = "rate_limited"  # too many frames or sends: carries retry_after_ms
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"  # over the socket's subscriptions
    UNAVAILABLE = "unavailable"  # Redis down or full: the message was not taken
    # The send may or may not have been stored (a timeout, a connection lost after the
    # send): resend it with the same client_id, which stores it once either way.
    UNKNOWN_OUTCOME = "unknown_outcome"


class CloseCode:
    """Close codes of /ws.

    1000-1015 are the standard codes (RFC 6455); the server uses 1001 (the node is
    shutting down: reconnect), 1009 (a frame over the size limit), 1011 (an unexpected
    server error) and 1013 (storage unreachable), the last two: reconnect with backoff.

    4000-4499: the server closed this connection, reconnecting (with backoff) is right.
    4500-4999: reconnecting as is will fail the same way; a person has to act first.
    """

    GOING_AWAY = 1001  # the node stops; another node (or this one, restarted) takes over
    MESSAGE_TOO_BIG = 1009  # a frame over frame_max_bytes (64 KiB by default)
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013  # the server cannot reach Redis to admit the connection
    SLOW_CONSUMER = 4000  # the client read too slowly: its outbound queue filled up
    TOO_MANY_CONNECTIONS = 4500  # this user already has max_connections_per_user sockets
    SIGNED_OUT = 4501  # the session was ended (logout, expiry) or the token revoked


class FrameError(ValueError):
    """A bad client frame; the `error` frame sent back is `as_frame()`."""

    def __init__(self, code: str, message: str, *, client_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_id = client_id

    def as_frame(self) -> str:
        return error(self.code, self.message, client_id=self.client_id)


def error(
    code: str,
    message: str,
    *,
    client_id: str | None = None,
    retry_after_ms: int | None = None,
    room: str | None = None,
) -> str:
    """An `error` frame; `room` names the room of a refused subscribe, unsubscribe or
    typing frame (the client retries a `rate_limited` subscribe after `retry_after_ms`)."""
    obj: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if room is not None:
        obj["room"] = room
    if client_id is not None:
        obj["client_id"] = client_id
    if room is not None:
        obj["room"] = room
    if retry_after_ms is not None:
        obj["retry_after_ms"] = retry_after_ms
    return dump_frame(obj)
