"""The changes to a message that travel its room's stream after it: `edit` (a new
body), `delete` (by its author, or by the room's owner or an admin: moderation, with a
reason kept for admins), `react` and `unreact` (one emoji per user per message).

Each names its `target`, the stream id of a message of the same room, and has its own
stream id once appended: every change to a room is ordered by one stream id with the
messages (domain/events.py decodes them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatroom.domain.envelope import (
    ENVELOPE_VERSION,
    Author,
    InvalidEvent,
    encode_envelope,
    stream_id_field,
    text_field,
)
from chatroom.domain.rules import DELETE_REASON_MAX, STORED_BODY_MAX_CHARS, is_emoji
from chatroom.domain.stream_ids import StreamId, iso_millis

EDIT, DELETE, REACT, UNREACT = "edit", "delete", "react", "unreact"
CHANGE_TYPES = frozenset({EDIT, DELETE, REACT, UNREACT})


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """A change to the message `target`, as appended to its room's stream."""

    type: str  # one of CHANGE_TYPES
    room: str
    author: Author  # who made the change (for a moderated delete: the moderator)
    target: StreamId
    client_id: str
    body: str | None = None  # edit: the new body
    emoji: str | None = None  # react, unreact
    reason: str | None = None  # delete: the moderator's reason, for admins only
    moderated: bool = False  # delete: someone else's message, by its room owner or an admin

    def encode(self) -> bytes:
        envelope: dict[str, Any] = {
            "v": ENVELOPE_VERSION,
            "type": self.type,
            "room": self.room,
            "user": self.author.as_json(),
            "client_id": self.client_id,
            "target": str(self.target),
        }
        if self.type == EDIT:
            envelope["body"] = self.body
        elif self.type == DELETE:
            envelope["moderated"] = self.moderated
            if self.reason is not None:
                envelope["reason"] = self.reason
        else:
            envelope["emoji"] = self.emoji
        return encode_envelope(envelope)

    def as_json(self, event_id: StreamId) -> dict[str, Any]:
        """The frame clients get, live and in replay (never the delete's reason)."""
        frame: dict[str, Any] = {
            "type": self.type,
            "id": str(event_id),
            "room": self.room,
            "target": str(self.target),
            "user": self.author.as_json(),
            "created_at": iso_millis(event_id.ms),
            "client_id": self.client_id,
        }
        if self.type == EDIT:
            frame["body"] = self.body
        elif self.type == DELETE:
            frame["moderated"] = self.moderated
        else:
            frame["emoji"] = self.emoji
        return frame


@dataclass(frozen=True, slots=True)
class ChangeEntry:
    """A change with its stream id: what a `since` replay delivers."""

    id: StreamId
    event: ChangeEvent


def change_event(
    kind: str, room: str, author: Author, client_id: str, obj: dict[str, Any], *, strict: bool
) -> ChangeEvent:
    """The rest of a change's envelope (its type, room, user and client_id are checked):
    its target and the fields of its type; InvalidEvent with the reason otherwise."""
    target = stream_id_field(obj, "target")
    if kind == EDIT:
        body = text_field(obj, "body", max_chars=STORED_BODY_MAX_CHARS, strict=strict)
        if not body.strip():
            raise InvalidEvent("field 'body' is empty")
        return ChangeEvent(EDIT, room, author, target, client_id, body=body)
    if kind == DELETE:
        moderated = obj.get("moderated", False)
        if not isinstance(moderated, bool):
            raise InvalidEvent("field 'moderated' must be a boolean")
        reason = None
        if obj.get("reason") is not None:
            reason = text_field(obj, "reason", max_chars=DELETE_REASON_MAX, strict=strict)
        return ChangeEvent(
            DELETE, room, author, target, client_id, reason=reason, moderated=moderated
        )
    emoji = text_field(obj, "emoji", max_chars=64, strict=strict)
    if not is_emoji(emoji):
        raise InvalidEvent("field 'emoji' is not one emoji")
    return ChangeEvent(kind, room, author, target, client_id, emoji=emoji)
