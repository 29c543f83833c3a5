"""Room restrictions in SQL: users muted in, or removed from, a room until a time.

Each change is stored with its moderation log entry in one transaction; a removal also
ends the membership there. Telling the app nodes is the caller's part (`Hub.restricted`):
they keep what is in force in memory (hub/restrictions.py), loaded with `in_force`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.accounts.users_table import now_utc
from chatroom.domain.events import Author
from chatroom.domain.moderation import MUTE, REMOVE, Action, Restriction
from chatroom.domain.rooms import Room
from chatroom.domain.stream_ids import iso_millis
from chatroom.domain.users import User
from chatroom.rooms.moderation_log import millis, moment_of, record_action
from chatroom.store.tables import room_members, room_restrictions, rooms, users


@dataclass(frozen=True, slots=True)
class RestrictedUser:
    """A user under a restriction in a room, as the room's moderators see it."""

    user: Author
    kind: str
    until_ms: int

    def as_json(self) -> dict[str, Any]:
        return {"user": self.user.as_json(), "kind": self.kind, "until": iso_millis(self.until_ms)}


def now_ms() -> int:
    return int(time.time() * 1000)


class RoomRestrictions:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def restrict(
        self, actor: User, room: Room, target: User, kind: str, until_ms: int, reason: str
    ) -> Restriction:
        """Mute `target` in `room`, or remove them from it, until `until_ms` (a later or
        an earlier time replaces the one in force), logged as done by `actor`."""
        action = Action.MUTE if kind == MUTE else Action.REMOVE
        async with self._engine.begin() as conn:
            await conn.execute(
                room_restrictions.delete().where(
                    room_restrictions.c.room_id == room.id,
                    room_restrictions.c.user_id == target.id,
                    room_restrictions.c.kind == kind,
                )
            )
            await conn.execute(
                room_restrictions.insert().values(
                    room_id=room.id,
                    user_id=target.id,
                    kind=kind,
                    until=moment_of(until_ms),
                    created_by=actor.id,
                    created_at=now_utc(),
                )
            )
            if kind == REMOVE:
                await conn.execute(
                    room_members.delete().where(
                        room_members.c.room_id == room.id, room_members.c.user_id == target.id
                    )
                )
            await record_action(
                conn,
                action,
                actor_id=actor.id,
                target_id=target.id,
                room_id=room.id,
                reason=reason,
                until_ms=until_ms,
            )
        return Restriction(room.id, room.slug, target.id, kind, until_ms)

    async def lift(self, actor: User, room: Room, target: User, kind: str) -> bool:
        """End a mute (or a removal) before its time; False if none was in force."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                room_restrictions.delete().where(
                    room_restrictions.c.room_id == room.id,
                    room_restrictions.c.user_id == target.id,
                    room_restrictions.c.kind == kind,
                    room_restrictions.c.until > now_utc(),
                )
            )
            if result.rowcount == 0:
                return False
            await record_action(
                conn,
                Action.UNMUTE if kind == MUTE else Action.UNREMOVE,
                actor_id=actor.id,
                target_id=target.id,
                room_id=room.id,
            )
        return True

    async def in_force(self) -> list[Restriction]:
        """Every restriction not yet over, in every room (what a node keeps in memory)."""
        query = (
            sa.select(
                room_restrictions.c.room_id,
                room_restrictions.c.user_id,
                room_restrictions.c.kind,
                room_restrictions.c.until,
                rooms.c.slug,
            )
            .select_from(room_restrictions.join(rooms, rooms.c.id == room_restrictions.c.room_id))
            .where(room_restrictions.c.until > now_utc())
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            Restriction(int(r.room_id), r.slug, int(r.user_id), r.kind, millis(r.until))
            for r in rows
        ]

    async def in_room(self, room: Room) -> list[RestrictedUser]:
        """The room's restrictions in force, by username."""
        query = (
            sa.select(
                users.c.id,
                users.c.username,
                users.c.display_name,
                room_restrictions.c.kind,
                room_restrictions.c.until,
            )
            .select_from(room_restrictions.join(users, users.c.id == room_restrictions.c.user_id))
            .where(room_restrictions.c.room_id == room.id, room_restrictions.c.until > now_utc())
            .order_by(users.c.username_key, room_restrictions.c.kind)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            RestrictedUser(Author(int(r.id), r.username, r.display_name), r.kind, millis(r.until))
            for r in rows
        ]
