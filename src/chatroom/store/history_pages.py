"""Pages of a room's archived messages, ordered numerically by (stream_ms, stream_seq)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.domain.changes import ChangeEntry, ChangeEvent
from chatroom.domain.events import Author, Message, RoomItem
from chatroom.domain.stream_ids import ZERO, StreamId
from chatroom.store.tables import message_events, messages, rooms, users

_COLUMNS = (
    messages.c.stream_ms,
    messages.c.stream_seq,
    messages.c.user_id,
    messages.c.client_id,
    messages.c.body,
    messages.c.reply_to,
    users.c.username,
    users.c.display_name,
)
_JOINED = messages.outerjoin(users, users.c.id == messages.c.user_id)


def _after(bound: StreamId, table: sa.Table = messages) -> sa.ColumnElement[bool]:
    return sa.or_(
        table.c.stream_ms > bound.ms,
        sa.and_(table.c.stream_ms == bound.ms, table.c.stream_seq > bound.seq),
    )


def _before(bound: StreamId, table: sa.Table = messages) -> sa.ColumnElement[bool]:
    return sa.or_(
        table.c.stream_ms < bound.ms,
        sa.and_(table.c.stream_ms == bound.ms, table.c.stream_seq < bound.seq),
    )


def _author(row: Any) -> Author:
    return Author(
        id=row.user_id,
        username=row.username or "deleted",
        display_name=row.display_name or "deleted user",
    )


def _change(room_slug: str, row: Any) -> ChangeEntry:
    event = ChangeEvent(
        type=row.type,
        room=room_slug,
        author=_author(row),
        target=StreamId(row.target_ms, row.target_seq),
        client_id=row.client_id,
        body=row.body,
        emoji=row.emoji,
        reason=row.reason,
        moderated=bool(row.moderated),
    )
    return ChangeEntry(StreamId(row.stream_ms, row.stream_seq), event)


def _message(room_slug: str, row: Any) -> Message:  # a Row of _COLUMNS
    author = Author(
        id=row.user_id,
        username=row.username or "deleted",
        display_name=row.display_name or "deleted user",
    )
    return Message(
        id=StreamId(row.stream_ms, row.stream_seq),
        room=room_slug,
        author=author,
        body=row.body,
        client_id=row.client_id,
        reply_to=None if row.reply_to is None else StreamId.parse(row.reply_to),
    )


class ArchivedPages:
    """Reads of the `messages` table for the history merge."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def before(
        self,
        room_id: int,
        room_slug: str,
        upper: StreamId,
        limit: int,
        *,
        lower: StreamId | None = None,
    ) -> list[Message]:
        """Up to `limit` messages with id < upper (and > lower), newest first."""
        bounds = [_before(upper)] if lower is None else [_before(upper), _after(lower)]
        query = (
            sa.select(*_COLUMNS)
            .select_from(_JOINED)
            .where(messages.c.room_id == room_id, *bounds)
            .order_by(messages.c.stream_ms.desc(), messages.c.stream_seq.desc())
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_message(room_slug, row) for row in rows]

    async def between(
        self, room_id: int, room_slug: str, lower: StreamId, upper: StreamId, limit: int
    ) -> list[Message]:
        """Up to `limit` messages with lower < id < upper, oldest first."""
        query = (
            sa.select(*_COLUMNS)
            .select_from(_JOINED)
            .where(messages.c.room_id == room_id, _after(lower), _before(upper))
            .order_by(messages.c.stream_ms, messages.c.stream_seq)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_message(room_slug, row) for row in rows]

    async def changes_between(
        self, room_id: int, room_slug: str, lower: StreamId, upper: StreamId, limit: int
    ) -> list[ChangeEntry]:
        """Up to `limit` archived changes with lower < id < upper, oldest first."""
        e = message_events
        query = (
            sa.select(
                e.c.stream_ms,
                e.c.stream_seq,
                e.c.type,
                e.c.target_ms,
                e.c.target_seq,
                e.c.user_id,
                e.c.client_id,
                e.c.body,
                e.c.emoji,
                e.c.reason,
                e.c.moderated,
                users.c.username,
                users.c.display_name,
            )
            .select_from(e.outerjoin(users, users.c.id == e.c.user_id))
            .where(e.c.room_id == room_id, _after(lower, e), _before(upper, e))
            .order_by(e.c.stream_ms, e.c.stream_seq)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_change(room_slug, row) for row in rows]

    async def items_between(
        self, room_id: int, room_slug: str, lower: StreamId, upper: StreamId, limit: int
    ) -> list[RoomItem]:
        """Up to `limit` archived messages and changes with lower < id < upper, oldest
        first: the first `limit` of both merged."""
        found: list[RoomItem] = [
            *await self.between(room_id, room_slug, lower, upper, limit),
            *await self.changes_between(room_id, room_slug, lower, upper, limit),
        ]
        found.sort(key=lambda item: item.id)
        return found[:limit]

    async def newest_id(self, room_slug: str) -> StreamId:
        """The id of the room's newest archived message (by slug), or 0-0."""
        query = (
            sa.select(messages.c.stream_ms, messages.c.stream_seq)
            .select_from(messages.join(rooms, rooms.c.id == messages.c.room_id))
            .where(rooms.c.slug == room_slug)
            .order_by(messages.c.stream_ms.desc(), messages.c.stream_seq.desc())
            .limit(1)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return StreamId(row.stream_ms, row.stream_seq) if row else ZERO
