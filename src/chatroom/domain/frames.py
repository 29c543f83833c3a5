"""The WebSocket frames of contract v1: client frames parsed into typed objects, server
frames built as JSON text, and the error and close codes, as named constants.

Pure: no socket, no Redis. A bad client frame raises `FrameError` with a stable `code`
(the `error` frame's code); the connection answers it and stays open. Only a frame over
the size limit closes the socket (1009), and that is checked before parsing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chatroom.domain.changes import CHANGE_TYPES, DELETE, EDIT, ChangeEvent
from chatroom.domain.events import Author, Message, MessageEvent, RoomItem, StreamEvent
from chatroom.domain.rules import (
    CLIENT_ID,
    CLIENT_ID_RULE,
    DELETE_REASON_MAX,
    RuleError,
    clean_body,
    is_emoji,
    is_room_name,
)
from chatroom.domain.stream_ids import InvalidStreamId, StreamId


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


@dataclass(frozen=True, slots=True)
class Subscribe:
    room: str
    since: StreamId | None  # the last id the client saw; None: live messages only


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    room: str


@dataclass(frozen=True, slots=True)
class Send:
    room: str
    body: str  # already trimmed and checked
    client_id: str
    reply_to: StreamId | None = None  # a message of the same room (checked by the hub)


@dataclass(frozen=True, slots=True)
class Change:
    """An edit, delete, react or unreact of the message `target` (domain/changes.py)."""

    type: str
    room: str
    client_id: str
    target: StreamId
    body: str | None = None  # edit: trimmed and checked
    emoji: str | None = None  # react, unreact
    reason: str | None = None  # delete


@dataclass(frozen=True, slots=True)
class Typing:
    room: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Read:
    room: str
    id: StreamId  # the last message the user has read (the read mark moves only forward)


ClientFrame = Subscribe | Unsubscribe | Send | Change | Typing | Ping | Read


def frame_too_big(frame: str | bytes, max_bytes: int) -> bool:
    """Whether a frame is over the limit, counting UTF-8 bytes (encoding only when needed)."""
    if isinstance(frame, bytes):
        return len(frame) > max_bytes
    if len(frame) * 4 <= max_bytes:  # a character is at most 4 bytes
        return False
    return len(frame.encode("utf-8", "surrogatepass")) > max_bytes


def _load(frame: str | bytes) -> dict[str, Any]:
    if isinstance(frame, bytes):
        try:
            frame = frame.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(ErrorCode.INVALID_JSON, "a frame is UTF-8 JSON text") from None
    try:
        obj = json.loads(frame)
    except RecursionError:
        raise FrameError(ErrorCode.INVALID_JSON, "the frame is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers over Python's digit limit
        raise FrameError(ErrorCode.INVALID_JSON, f"the frame is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise FrameError(ErrorCode.INVALID_JSON, "a frame is a JSON object with a type")
    return obj


def _room(obj: dict[str, Any], client_id: str | None = None) -> str:
    room = obj.get("room")
    if room is None:
        raise FrameError(ErrorCode.MISSING_FIELD, "the frame needs a room", client_id=client_id)
    if not isinstance(room, str):
        raise FrameError(
            ErrorCode.MISSING_FIELD, "room must be a string (the room's slug)", client_id=client_id
        )
    if not is_room_name(room):  # no room can have this name
        raise FrameError(
            ErrorCode.ROOM_NOT_FOUND, f"there is no room {room[:40]!r}", client_id=client_id
        )
    return room


def _subscribe(obj: dict[str, Any]) -> Subscribe:
    room = _room(obj)
    since = obj.get("since")
    if since is None:
        return Subscribe(room, None)
    if not isinstance(since, str):
        raise FrameError(ErrorCode.INVALID_SINCE, "since must be a message id string")
    try:
        since_id = StreamId.parse(since)  # refuses parts past SQL's range: no message has one
    except InvalidStreamId:
        raise FrameError(
            ErrorCode.INVALID_SINCE, "since must be a message id like 1655188547271-0"
        ) from None
    return Subscribe(room, since_id)


def _read(obj: dict[str, Any]) -> Read:
    room = _room(obj)
    mark = obj.get("id")
    if mark is None:
        raise FrameError(ErrorCode.MISSING_FIELD, "a read needs the id of the last message read")
    if not isinstance(mark, str):
        raise FrameError(ErrorCode.INVALID_ID, "id must be a message id string")
    try:
        return Read(room, StreamId.parse(mark))
    except InvalidStreamId:
        raise FrameError(
            ErrorCode.INVALID_ID, "id must be a message id like 1655188547271-0"
        ) from None


_A = {"send": "a send", "edit": "an edit", "delete": "a delete", "react": "a react"}
_A["unreact"] = "an unreact"


def _client_id(obj: dict[str, Any], kind: str) -> str:
    client_id = obj.get("client_id")
    if client_id is None:
        raise FrameError(ErrorCode.MISSING_FIELD, f"{_A[kind]} needs a client_id")
    if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
        raise FrameError(ErrorCode.INVALID_CLIENT_ID, f"client_id must be {CLIENT_ID_RULE}")
    return client_id


def _body(obj: dict[str, Any], kind: str, client_id: str, body_max_chars: int) -> str:
    body = obj.get("body")
    if body is None:
        raise FrameError(
            ErrorCode.MISSING_FIELD,
            f"{_A[kind]} needs a body",
            client_id=client_id,
        )
    try:
        return clean_body(body, body_max_chars)
    except RuleError as exc:
        raise FrameError(exc.code, exc.message, client_id=client_id) from None


def _message_id(obj: dict[str, Any], key: str, client_id: str) -> StreamId:
    value = obj.get(key)
    if not isinstance(value, str):
        raise FrameError(
            ErrorCode.INVALID_TARGET, f"{key} must be a message id string", client_id=client_id
        )
    try:
        return StreamId.parse(value)
    except InvalidStreamId:
        raise FrameError(
            ErrorCode.INVALID_TARGET,
            f"{key} must be a message id like 1655188547271-0",
            client_id=client_id,
        ) from None


def _send(obj: dict[str, Any], body_max_chars: int) -> Send:
    client_id = _client_id(obj, "send")
    room = _room(obj, client_id)
    body = _body(obj, "send", client_id, body_max_chars)
    reply_to = None
    if obj.get("reply_to") is not None:
        reply_to = _message_id(obj, "reply_to", client_id)
    return Send(room, body, client_id, reply_to)


def _change(kind: str, obj: dict[str, Any], body_max_chars: int) -> Change:
    client_id = _client_id(obj, kind)
    room = _room(obj, client_id)
    if obj.get("target") is None:
        raise FrameError(
            ErrorCode.MISSING_FIELD,
            f"{_A[kind]} needs a target",
            client_id=client_id,
        )
    target = _message_id(obj, "target", client_id)
    if kind == EDIT:
        body = _body(obj, kind, client_id, body_max_chars)
        return Change(kind, room, client_id, target, body=body)
    if kind == DELETE:
        reason = obj.get("reason")
        if reason is not None:
            if not isinstance(reason, str) or len(reason) > DELETE_REASON_MAX:
                raise FrameError(
                    ErrorCode.INVALID_REASON,
                    f"reason must be text of at most {DELETE_REASON_MAX} characters",
                    client_id=client_id,
                )
            try:
                reason = clean_body(reason, DELETE_REASON_MAX) if reason.strip() else None
            except RuleError as exc:
                raise FrameError(
                    ErrorCode.INVALID_REASON, exc.message, client_id=client_id
                ) from None
        return Change(kind, room, client_id, target, reason=reason)
    emoji = obj.get("emoji")
    if not is_emoji(emoji):
        raise FrameError(
            ErrorCode.INVALID_EMOJI, "emoji must be one emoji, like 👍", client_id=client_id
        )
    assert isinstance(emoji, str)
    return Change(kind, room, client_id, target, emoji=emoji)


def parse_client_frame(frame: str | bytes, *, body_max_chars: int) -> ClientFrame:
    """The typed frame, or FrameError with the code to answer with."""
    obj = _load(frame)
    kind = obj.get("type")
    if kind is None:
        raise FrameError(ErrorCode.MISSING_FIELD, "a frame needs a type")
    if kind == "send":
        return _send(obj, body_max_chars)
    if kind in CHANGE_TYPES:
        return _change(kind, obj, body_max_chars)
    if kind == "subscribe":
        return _subscribe(obj)
    if kind == "unsubscribe":
        return Unsubscribe(_room(obj))
    if kind == "typing":
        return Typing(_room(obj))
    if kind == "ping":
        return Ping()
    if kind == "read":
        return _read(obj)
    shown = kind[:40] if isinstance(kind, str) else type(kind).__name__
    raise FrameError(
        ErrorCode.UNKNOWN_TYPE,
        f"unknown frame type {shown!r}: subscribe, unsubscribe, send, edit, delete, react, "
        "unreact, typing, ping or read",
    )


# Server frames, as JSON text: one encoding per frame, however many sockets it goes to.


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


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
    return _dump(obj)


def subscribed(room: str, last_id: StreamId, online: list[Author]) -> str:
    return _dump(
        {
            "type": "subscribed",
            "room": room,
            "last_id": str(last_id),
            "online": [user.as_json() for user in online],
        }
    )


def unsubscribed(room: str) -> str:
    return _dump({"type": "unsubscribed", "room": room})


def message(msg: Message) -> str:
    return _dump({"type": "message", **msg.as_json()})


def entry_frame(event_id: StreamId, event: StreamEvent) -> str:
    """The frame of a stream entry: a message, or a change to one."""
    if isinstance(event, MessageEvent):
        return message(
            Message(event_id, event.room, event.author, event.body, event.client_id, event.reply_to)
        )
    return change(event_id, event)


def item(found: RoomItem) -> str:
    """The frame of a message or a change read from history (a replay)."""
    if isinstance(found, Message):
        return message(found)
    return change(found.id, found.event)


def change(event_id: StreamId, event: ChangeEvent) -> str:
    return _dump(event.as_json(event_id))


def ack(client_id: str, message_id: StreamId) -> str:
    return _dump({"type": "ack", "client_id": client_id, "id": str(message_id)})


def presence(room: str, user: Author, state: str) -> str:
    return _dump({"type": "presence", "room": room, "user": user.as_json(), "state": state})


def typing(room: str, user: Author) -> str:
    return _dump({"type": "typing", "room": room, "user": user.as_json()})


def pong() -> str:
    return _dump({"type": "pong"})


def resync(room: str) -> str:
    return _dump({"type": "resync", "room": room})


def read(room: str, mark: StreamId) -> str:
    """The user's read mark in the room moved (to their own sockets, every tab)."""
    return _dump({"type": "read", "room": room, "id": str(mark)})


class RoomEvent:
    """The `event` of a `room` frame: a change to the user's rooms."""

    CREATED = "created"  # a new public room (to everyone)
    JOINED = "joined"  # you joined a public room (on another tab or device)
    ADDED = "added"  # the owner added you to a private room, or a DM was started with you
    LEFT = "left"  # you left the room (on another tab or device)
    REMOVED = "removed"  # the owner removed you from a private room


def room_event(event: str, room: dict[str, Any]) -> str:
    """A change to the user's rooms; `room` is the Room as GET /api/rooms shows it."""
    return _dump({"type": "room", "event": event, "room": room})
