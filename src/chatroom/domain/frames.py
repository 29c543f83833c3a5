"""The WebSocket frames of contract v1: client frames parsed into typed objects, server
frames built as JSON text, and the error and close codes, as named constants.

Pure: no socket, no Redis. A bad client frame raises `FrameError` with a stable `code`
(the `error` frame's code); the connection answers it and stays open. Only a frame over
the size limit closes the socket (1009), and that is checked before parsing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

import orjson

from chatroom.domain.change_frames import (
    Change,
    body_field,
    client_id_field,
    message_id_field,
    parse_change,
    room_field,
)
from chatroom.domain.changes import CHANGE_TYPES, ChangeEvent
from chatroom.domain.events import Author, Message, MessageEvent, RoomItem, StreamEvent
from chatroom.domain.frame_errors import CloseCode, ErrorCode, FrameError, dump_frame, error
from chatroom.domain.stream_ids import InvalidStreamId, StreamId

__all__ = [
    "Change",
    "ClientFrame",
    "CloseCode",
    "ErrorCode",
    "FrameError",
    "Ping",
    "Read",
    "RoomEvent",
    "Send",
    "Subscribe",
    "Typing",
    "Unsubscribe",
    "ack",
    "change",
    "entry_frame",
    "error",
    "frame_too_big",
    "item",
    "message",
    "parse_client_frame",
    "pong",
    "presence",
    "read",
    "resync",
    "room_event",
    "subscribed",
    "typing",
    "unsubscribed",
]


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
    # Fast path for the common frame, an object of strings (a send, a subscribe, a
    # ping): orjson reads it as the standard library does, about three times faster.
    # Anything else (a number, a null, a nested value, a lone surrogate, invalid JSON) is
    # read again below, so that its value and its error are the standard library's.
    try:
        fast = orjson.loads(frame)
    except orjson.JSONDecodeError:
        pass
    else:
        if type(fast) is dict and all(type(value) is str for value in fast.values()):
            return cast(dict[str, Any], fast)
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


def _subscribe(obj: dict[str, Any]) -> Subscribe:
    room = room_field(obj)
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
    room = room_field(obj)
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


def _send(obj: dict[str, Any], body_max_chars: int) -> Send:
    client_id = client_id_field(obj, "send")
    room = room_field(obj, client_id)
    body = body_field(obj, "send", client_id, body_max_chars)
    reply_to = None
    if obj.get("reply_to") is not None:
        reply_to = message_id_field(obj, "reply_to", client_id)
    return Send(room, body, client_id, reply_to)


def parse_client_frame(frame: str | bytes, *, body_max_chars: int) -> ClientFrame:
    """The typed frame, or FrameError with the code to answer with."""
    obj = _load(frame)
    kind = obj.get("type")
    if kind is None:
        raise FrameError(ErrorCode.MISSING_FIELD, "a frame needs a type")
    if kind == "send":
        return _send(obj, body_max_chars)
    if kind in CHANGE_TYPES:
        return parse_change(kind, obj, body_max_chars)
    if kind == "subscribe":
        return _subscribe(obj)
    if kind == "unsubscribe":
        return Unsubscribe(room_field(obj))
    if kind == "typing":
        return Typing(room_field(obj))
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


def subscribed(room: str, last_id: StreamId, online: list[Author]) -> str:
    return dump_frame(
        {
            "type": "subscribed",
            "room": room,
            "last_id": str(last_id),
            "online": [user.as_json() for user in online],
        }
    )


def unsubscribed(room: str) -> str:
    return dump_frame({"type": "unsubscribed", "room": room})


def message(msg: Message) -> str:
    return dump_frame({"type": "message", **msg.as_json()})


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
    return dump_frame(event.as_json(event_id))


def ack(client_id: str, message_id: StreamId) -> str:
    return dump_frame({"type": "ack", "client_id": client_id, "id": str(message_id)})


def presence(room: str, user: Author, state: str) -> str:
    return dump_frame({"type": "presence", "room": room, "user": user.as_json(), "state": state})


def typing(room: str, user: Author) -> str:
    return dump_frame({"type": "typing", "room": room, "user": user.as_json()})


def pong() -> str:
    return dump_frame({"type": "pong"})


def resync(room: str) -> str:
    return dump_frame({"type": "resync", "room": room})


def read(room: str, mark: StreamId) -> str:
    """The user's read mark in the room moved (to their own sockets, every tab)."""
    return dump_frame({"type": "read", "room": room, "id": str(mark)})


class RoomEvent:
    """The `event` of a `room` frame: a change to the user's rooms."""

    CREATED = "created"  # a new public room (to everyone)
    JOINED = "joined"  # you joined a public room (on another tab or device)
    ADDED = "added"  # the owner added you to a private room, or a DM was started with you
    LEFT = "left"  # you left the room (on another tab or device)
    REMOVED = "removed"  # the owner removed you from a private room


def room_event(event: str, room: dict[str, Any]) -> str:
    """A change to the user's rooms; `room` is the Room as GET /api/rooms shows it."""
    return dump_frame({"type": "room", "event": event, "room": room})
