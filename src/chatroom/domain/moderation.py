"""Moderation: who may mute, remove or ban whom, for how long, and what the client is told.
Pure, no I/O.

A room's owner or a site admin mutes a user in a room (they still read it, but every send
and typing frame there is refused with `muted`) or removes them from it (their membership
ends, their subscriptions to it end with `removed`, and they cannot come back) until a
time. A site admin bans a user from the whole site (no login, no session, no token, every
socket closed with `CloseCode.BANNED`) until a time or for good. No one moderates
themselves or an admin, and a room's owner cannot be muted or removed in their own room.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chatroom.domain.refusals import Conflict, Forbidden
from chatroom.domain.rooms import Room
from chatroom.domain.rules import RuleError, has_lone_surrogate, unseen_character
from chatroom.domain.stream_ids import iso_millis
from chatroom.domain.users import User

# Restriction kinds in a room.
MUTE = "mute"
REMOVE = "remove"
KINDS = (MUTE, REMOVE)

# `error` frame codes (beside chatroom.domain.frames.ErrorCode); both carry `until`.
MUTED = "muted"  # a send or typing frame in a room the user is muted in
REMOVED = "removed"  # a subscribe, send or typing frame in a room the user was removed from
# `error` code of a login, and the close code of a banned user's sockets (4500-4999:
# reconnecting as is fails the same way).
BANNED = "banned"
BANNED_CLOSE_CODE = 4502


class Action:
    """What the moderation log records (`moderation_log.action`)."""

    MUTE = "mute"
    UNMUTE = "unmute"
    REMOVE = "remove"
    UNREMOVE = "unremove"  # a removal ended before its time
    BAN = "ban"
    UNBAN = "unban"
    DELETE = "delete"  # a message deleted by the room's owner or an admin (not its author)


ACTIONS = (
    Action.MUTE,
    Action.UNMUTE,
    Action.REMOVE,
    Action.UNREMOVE,
    Action.BAN,
    Action.UNBAN,
    Action.DELETE,
)

DURATION_MIN_S = 60
DURATION_MAX_S = 366 * 24 * 3600
REASON_MAX = 500


@dataclass(frozen=True, slots=True)
class Restriction:
    """A user muted in, or removed from, a room until `until_ms` (Unix ms)."""

    room_id: int
    slug: str
    user_id: int
    kind: str
    until_ms: int

    def active(self, now_ms: int) -> bool:
        return self.until_ms > now_ms

    def as_json(self) -> dict[str, Any]:
        return {
            "room": self.slug,
            "room_id": self.room_id,
            "user": self.user_id,
            "kind": self.kind,
            "until": self.until_ms,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Restriction:
        kind = str(obj["kind"])
        if kind not in KINDS:
            raise ValueError(f"unknown restriction kind {kind!r}")
        return cls(int(obj["room_id"]), str(obj["room"]), int(obj["user"]), kind, int(obj["until"]))


def check_duration(value: object, *, required: bool = True) -> int | None:
    """A duration in whole seconds, DURATION_MIN_S..DURATION_MAX_S (None: for good, where
    that is allowed); else 422 `invalid_duration`."""
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError("invalid_duration", "duration_s must be a whole number of seconds")
    if not DURATION_MIN_S <= value <= DURATION_MAX_S:
        raise RuleError(
            "invalid_duration",
            f"duration_s is {DURATION_MIN_S}-{DURATION_MAX_S} seconds (a minute to a year)",
        )
    return value


def check_reason(value: object) -> str:
    """An optional reason kept in the log: up to REASON_MAX characters, nothing unseen
    but line breaks; else 422 `invalid_reason`."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RuleError("invalid_reason", "reason must be a string")
    text = value.strip()
    if len(text) > REASON_MAX or has_lone_surrogate(text):
        raise RuleError("invalid_reason", f"a reason is at most {REASON_MAX} characters")
    unseen = unseen_character(text.replace("\n", " "))
    if unseen is not None:
        raise RuleError("invalid_reason", "a reason may not hold control characters")
    return text


def check_room_moderator(actor: User, room: Room) -> None:
    """Only the room's owner or a site admin moderates a room; never a conversation."""
    if room.is_dm:
        raise Conflict("not_moderated", "a direct conversation has no moderation")
    if not (actor.is_admin or (room.owner_id is not None and room.owner_id == actor.id)):
        raise Forbidden("forbidden", "only the room's owner or an admin moderates it")


def check_room_target(actor: User, room: Room, target: User) -> None:
    """Whom `actor` (a moderator of `room`) may mute or remove there."""
    if target.id == actor.id:
        raise Conflict("cannot_moderate_self", "you cannot moderate yourself")
    if target.is_admin:
        raise Forbidden("target_is_admin", "an admin cannot be muted or removed")
    if room.owner_id == target.id:
        raise Forbidden("target_is_owner", "the room's owner cannot be muted or removed")


def check_ban(actor: User, target: User, admins_left: int) -> None:
    """Only an admin bans; never themselves, never the last admin not banned
    (`admins_left`: the admins not banned, the target excluded)."""
    if not actor.is_admin:
        raise Forbidden("forbidden", "only an admin bans users")
    if target.id == actor.id:
        raise Conflict("cannot_moderate_self", "you cannot ban yourself")
    if target.is_admin and admins_left < 1:
        raise Conflict("last_admin", "the last admin cannot be banned")


def until_text(until_ms: int | None) -> str:
    return "for good" if until_ms is None else f"until {iso_millis(until_ms)}"


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def refused(code: str, slug: str, until_ms: int, *, client_id: str | None = None) -> str:
    """The `error` frame of a frame refused by a mute or a removal: `until` when it ends."""
    what = "muted in" if code == MUTED else "removed from"
    obj: dict[str, Any] = {
        "type": "error",
        "code": code,
        "message": f"you are {what} {slug} {until_text(until_ms)}",
        "room": slug,
        "until": iso_millis(until_ms),
    }
    if client_id is not None:
        obj["client_id"] = client_id
    return _dump(obj)


def muted(slug: str, until_ms: int | None) -> str:
    """To the user's sockets: muted in the room until `until` (null: no longer muted)."""
    until = None if until_ms is None else iso_millis(until_ms)
    return _dump({"type": "muted", "room": slug, "until": until})
