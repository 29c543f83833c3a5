"""The moderation log in SQL: every mute, unmute, removal, ban, unban and moderation
delete, with who did it to whom, in which room, why and until when.

`record_action` writes one entry inside the caller's transaction, so that an action and
its entry are stored together or not at all; any code that moderates calls it (the
message delete path with `Action.DELETE` and the message's id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatroom.accounts.users_table import now_utc
from chatroom.domain.events import Author
from chatroom.domain.moderation import ACTIONS
from chatroom.domain.stream_ids import iso_millis
from chatroom.store.tables import moderation_log, rooms, users

LOG_PAGE_MAX = 200


def millis(moment: datetime) -> int:
    """Unix ms of a naive UTC datetime as SQL gives it back."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def moment_of(ms: int) -> datetime:
    """The naive UTC datetime SQL keeps for Unix ms."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).replace(tzinfo=None)


async def record_action(
    conn: AsyncConnection,
    action: str,
    *,
    actor_id: int,
    target_id: int | None = None,
    room_id: int | None = None,
    message_id: str | None = None,
    reason: str = "",
    until_ms: int | None = None,
) -> None:
    """Add an entry to the log, in the caller's transaction (`conn`)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown moderation action {action!r}")
    await conn.execute(
        moderation_log.insert().values(
            action=action,
            actor_id=actor_id,
            target_id=target_id,
            room_id=room_id,
            message_id=message_id,
            reason=reason,
            until=None if until_ms is None else moment_of(until_ms),
            created_at=now_utc(),
        )
    )


@dataclass(frozen=True, slots=True)
class LogEntry:
    id: int
    action: str
    actor: Author
    target: Author | None
    room: str | None
    message_id: str | None
    reason: str
    until_ms: int | None
    created_ms: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "actor": self.actor.as_json(),
            "target": None if self.target is None else self.target.as_json(),
            "room": self.room,
            "message_id": self.message_id,
            "reason": self.reason,
            "until": None if self.until_ms is None else iso_millis(self.until_ms),
            "created_at": iso_millis(self.created_ms),
        }


@dataclass(frozen=True, slots=True)
class LogPage:
    entries: list[LogEntry]  # newest first
    has_more: bool


class ModerationLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def recent(
        self, *, before: int | None = None, limit: int = 50, room_id: int | None = None
    ) -> LogPage:
        """The newest `limit` entries older than the entry `before` (None: the newest),
        of one room or of all."""
        actors = users.alias("actors")
        targets = users.alias("targets")
        query = (
            sa.select(
                moderation_log,
                actors.c.username.label("actor_username"),
                actors.c.display_name.label("actor_display_name"),
                targets.c.username.label("target_username"),
                targets.c.display_name.label("target_display_name"),
                rooms.c.slug.label("room_slug"),
            )
            .select_from(
                moderation_log.join(actors, actors.c.id == moderation_log.c.actor_id)
                .outerjoin(targets, targets.c.id == moderation_log.c.target_id)
                .outerjoin(rooms, rooms.c.id == moderation_log.c.room_id)
            )
            .order_by(moderation_log.c.id.desc())
            .limit(limit + 1)
        )
        if before is not None:
            query = query.where(moderation_log.c.id < before)
        if room_id is not None:
            query = query.where(moderation_log.c.room_id == room_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        entries = [
            LogEntry(
                id=int(row.id),
                action=row.action,
                actor=Author(int(row.actor_id), row.actor_username, row.actor_display_name),
                target=None
                if row.target_id is None
                else Author(int(row.target_id), row.target_username, row.target_display_name),
                room=row.room_slug,
                message_id=row.message_id,
                reason=row.reason,
                until_ms=None if row.until is None else millis(row.until),
                created_ms=millis(row.created_at),
            )
            for row in rows[:limit]
        ]
        return LogPage(entries, has_more=len(rows) > limit)
