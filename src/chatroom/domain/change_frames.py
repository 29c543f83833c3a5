"""The client frames that change a message (edit, delete, react, unreact; issue 12), and
the checks of the fields every client frame shares: room, client_id, body, message id.
Pure, like domain/frames.py, which parses the other frames and re-exports `Change`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatroom.domain.changes import DELETE, EDIT
from chatroom.domain.frame_errors import ErrorCode, FrameError
from chatroom.domain.rules import (
    CLIENT_ID_RULE,
    DELETE_REASON_MAX,
    RuleError,
    clean_body,
    is_client_id,
    is_emoji,
    is_room_name,
)
from chatroom.domain.stream_ids import InvalidStreamId, StreamId


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


def room_field(obj: dict[str, Any], client_id: str | None = None) -> str:
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


_A = {"send": "a send", "edit": "an edit", "delete": "a delete", "react": "a react"}
_A["unreact"] = "an unreact"


def client_id_field(obj: dict[str, Any], kind: str) -> str:
    client_id = obj.get("client_id")
    if client_id is None:
        raise FrameError(ErrorCode.MISSING_FIELD, f"{_A[kind]} needs a client_id")
    if not isinstance(client_id, str) or not is_client_id(client_id):
        raise FrameError(ErrorCode.INVALID_CLIENT_ID, f"client_id must be {CLIENT_ID_RULE}")
    return client_id


def body_field(obj: dict[str, Any], kind: str, client_id: str, body_max_chars: int) -> str:
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


def message_id_field(obj: dict[str, Any], key: str, client_id: str) -> StreamId:
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


def parse_change(kind: str, obj: dict[str, Any], body_max_chars: int) -> Change:
    client_id = client_id_field(obj, kind)
    room = room_field(obj, client_id)
    if obj.get("target") is None:
        raise FrameError(
            ErrorCode.MISSING_FIELD,
            f"{_A[kind]} needs a target",
            client_id=client_id,
        )
    target = message_id_field(obj, "target", client_id)
    if kind == EDIT:
        body = body_field(obj, kind, client_id, body_max_chars)
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
