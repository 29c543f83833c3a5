"""The event envelope carried by a room stream, and its strict decoding.

One stream entry holds one field, `event`: a JSON object with a version and a type.
`message` (optionally replying to an earlier message: `reply_to`) and the changes to a
message, `edit`, `delete`, `react` and `unreact` (domain/changes.py), travel the same
stream, so that every change to a room is ordered by one stream id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from chatroom.domain.changes import CHANGE_TYPES, ChangeEntry, ChangeEvent, change_event
from chatroom.domain.envelope import (
    ENVELOPE_VERSION,
    Author,
    InvalidEvent,
    encode_envelope,
    stream_id_field,
    text_field,
)
from chatroom.domain.rules import (
    CLIENT_ID_MAX,
    CLIENT_ID_RULE,
    DISPLAY_NAME_MAX,
    SLUG_MAX,
    SQL_ID_MAX,
    STORED_BODY_MAX_CHARS,
    USERNAME,
    USERNAME_MAX,
    is_client_id,
    is_room_name,
)
from chatroom.domain.stream_ids import StreamId, iso_millis

__all__ = [
    "ENVELOPE_VERSION",
    "EVENT_FIELD",
    "NESTED_TOO_DEEP",
    "REPLY_PREVIEW_CHARS",
    "Author",
    "ChangeEntry",
    "ChangeEvent",
    "InvalidEvent",
    "Message",
    "MessageEvent",
    "MessageState",
    "Reaction",
    "ReplyPreview",
    "RoomItem",
    "StreamEvent",
    "decode_event",
]

# The one field of a stream entry: it holds the envelope.
EVENT_FIELD = b"event"
# An envelope nests two levels (the user object). JSON nested far deeper is refused by
# orjson, and would make the standard library's decoder recurse until RecursionError.
NESTED_TOO_DEEP = "not JSON: nested too deeply"


@dataclass(slots=True)  # not frozen: a frozen init costs three times more, and every
class MessageEvent:  # entry read on every node and archiver makes one (never changed)
    """A message as appended to its room's stream, before it has an id."""

    room: str
    author: Author
    body: str
    client_id: str
    reply_to: StreamId | None = None  # an earlier message of the same room
    type: str = "message"

    def encode(self) -> bytes:
        envelope: dict[str, Any] = {
            "v": ENVELOPE_VERSION,
            "type": self.type,
            "room": self.room,
            "user": self.author.as_json(),
            "body": self.body,
            "client_id": self.client_id,
        }
        if self.reply_to is not None:  # absent, not null: a plain message is as before
            envelope["reply_to"] = str(self.reply_to)
        return encode_envelope(envelope)


@dataclass(frozen=True, slots=True)
class Message:
    """A message with its stream id: what history pages and live frames carry."""

    id: StreamId
    room: str
    author: Author
    body: str
    client_id: str
    reply_to: StreamId | None = None
    # The current state, as SQL holds it (history pages); a live message has none yet.
    state: MessageState | None = None

    def as_json(self) -> dict[str, Any]:
        found = {
            "id": str(self.id),
            "room": self.room,
            "user": self.author.as_json(),
            "body": self.body,
            "created_at": iso_millis(self.id.ms),
            "client_id": self.client_id,
            "reply_to": None if self.reply_to is None else str(self.reply_to),
        }
        if self.state is not None:
            found.update(self.state.as_json())
        return found


@dataclass(frozen=True, slots=True)
class Reaction:
    emoji: str
    count: int
    me: bool


@dataclass(frozen=True, slots=True)
class ReplyPreview:
    id: StreamId
    author: Author
    body: str  # the first REPLY_PREVIEW_CHARS characters; "" when deleted
    deleted: bool


REPLY_PREVIEW_CHARS = 200


@dataclass(frozen=True, slots=True)
class MessageState:
    """What the events applied so far made of a message (history pages show it)."""

    edited_ms: int | None = None
    deleted: bool = False
    reactions: tuple[Reaction, ...] = ()
    reply: ReplyPreview | None = None

    def as_json(self) -> dict[str, Any]:
        reply = self.reply
        return {
            "edited_at": None if self.edited_ms is None else iso_millis(self.edited_ms),
            "deleted": self.deleted,
            "reactions": [{"emoji": r.emoji, "count": r.count, "me": r.me} for r in self.reactions],
            "reply": None
            if reply is None or self.deleted
            else {
                "id": str(reply.id),
                "user": reply.author.as_json(),
                "body": "" if reply.deleted else reply.body[:REPLY_PREVIEW_CHARS],
                "deleted": reply.deleted,
            },
        }


# Room names already checked: the streams' rooms, whose names every entry repeats.
_VALID_ROOMS_MAX = 4096
_valid_rooms: set[str] = set()

# Authors already checked, by (id, username, display_name): the same few senders write
# most entries, and their checks and Author are then not redone for each.
_VALID_AUTHORS_MAX = 4096
_valid_authors: dict[tuple[int, str, str], Author] = {}


def decode_event(stream_room: str, fields: dict[bytes, bytes]) -> StreamEvent:
    """Decode and validate one stream entry's fields, or raise InvalidEvent with the reason.
    Nothing else ever escapes: whatever an entry holds, its readers (the archiver's
    triage, the hub's fan-out) get a reason, never a crash."""
    try:
        return _decode(stream_room, fields)
    except InvalidEvent:
        raise
    except RecursionError:
        raise InvalidEvent(NESTED_TOO_DEEP) from None
    except Exception as exc:  # a decoder's surprise is this entry's fault, not the reader's
        raise InvalidEvent(f"cannot be decoded: {type(exc).__name__}: {exc}"[:300]) from None


def _decode(stream_room: str, fields: dict[bytes, bytes]) -> StreamEvent:
    raw = fields.get(EVENT_FIELD)
    if raw is not None:
        # Fast path for the common, valid entry: orjson refuses invalid UTF-8 and lone
        # surrogates itself, so their checks are skipped here. Anything it or the rules
        # refuse is decoded again by the standard library below, which gives the reason
        # (orjson's messages, and its float for a huge integer, differ from json's).
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if "depth limit" in str(exc):
                raise InvalidEvent(NESTED_TOO_DEEP) from None
        else:
            try:
                return _event(stream_room, obj, strict=False)
            except InvalidEvent:
                pass
    return _decode_strictly(stream_room, fields)


def _decode_strictly(stream_room: str, fields: dict[bytes, bytes]) -> StreamEvent:
    raw = fields.get(EVENT_FIELD)
    if raw is None:
        names = sorted(k.decode("latin-1") for k in fields)
        raise InvalidEvent(f"no 'event' field (fields: {names})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidEvent(f"not JSON: {exc.msg} at {exc.pos}") from None
    except RecursionError:
        raise InvalidEvent(NESTED_TOO_DEEP) from None
    return _event(stream_room, obj, strict=True)


def _event(stream_room: str, obj: Any, *, strict: bool) -> StreamEvent:
    """The envelope's rules. `strict`: also look for lone surrogates (a JSON `\\ud800`
    escape decodes to one), which only the standard library's decoder lets through."""
    if not isinstance(obj, dict):
        raise InvalidEvent(f"envelope must be a JSON object, got {type(obj).__name__}")
    if obj.get("v") != ENVELOPE_VERSION:
        raise InvalidEvent(f"unknown envelope version {obj.get('v')!r}")
    kind = obj.get("type")
    if kind != "message" and kind not in CHANGE_TYPES:
        raise InvalidEvent(f"unknown event type {kind!r}"[:200])
    room = _room(obj, stream_room, strict=strict)
    user = obj.get("user")
    if not isinstance(user, dict):
        raise InvalidEvent("field 'user' must be an object")
    user_id = user.get("id")
    if not isinstance(user_id, int) or isinstance(user_id, bool) or not 0 < user_id <= SQL_ID_MAX:
        raise InvalidEvent("field 'user.id' must be a positive integer")
    username, display_name = user.get("username"), user.get("display_name")
    author = None
    if type(username) is str and type(display_name) is str:
        author = _valid_authors.get((user_id, username, display_name))
    if author is None:
        username = text_field(user, "username", max_chars=USERNAME_MAX, strict=strict)
        if not USERNAME.match(username):
            raise InvalidEvent("field 'user.username' is not a valid username")
        display_name = text_field(user, "display_name", max_chars=DISPLAY_NAME_MAX, strict=strict)
        author = Author(user_id, username, display_name)
        if len(_valid_authors) >= _VALID_AUTHORS_MAX:
            _valid_authors.clear()
        _valid_authors[(user_id, username, display_name)] = author
    client_id = obj.get("client_id")
    if type(client_id) is not str or not is_client_id(client_id):
        text_field(obj, "client_id", max_chars=CLIENT_ID_MAX, strict=strict)  # its reason
        raise InvalidEvent(f"field 'client_id' is not {CLIENT_ID_RULE}")
    if kind != "message":
        return change_event(kind, room, author, client_id, obj, strict=strict)
    body = text_field(obj, "body", max_chars=STORED_BODY_MAX_CHARS, strict=strict)
    if not body or body.isspace():
        raise InvalidEvent("field 'body' is empty")
    reply_to = None
    if "reply_to" in obj:
        reply_to = stream_id_field(obj, "reply_to")
    return MessageEvent(room, author, body, client_id, reply_to)


def _room(obj: dict[str, Any], stream_room: str, *, strict: bool) -> str:
    """The envelope's room: a room's name, and the room of the stream it is in."""
    room = obj.get("room")
    if room == stream_room and stream_room in _valid_rooms:
        return stream_room
    room = text_field(obj, "room", max_chars=SLUG_MAX, strict=strict)
    if room != stream_room or not is_room_name(room):
        raise InvalidEvent(f"room {room!r} does not match its stream {stream_room!r}")
    if len(_valid_rooms) >= _VALID_ROOMS_MAX:
        _valid_rooms.clear()
    _valid_rooms.add(room)
    return room


StreamEvent = MessageEvent | ChangeEvent
# What a replay delivers: messages and the changes to them, by stream id.
RoomItem = Message | ChangeEntry
