"""Pages of a room's archived messages, ordered numerically by (stream_ms, stream_seq)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.domain.events import Author, Message
from chatroom.domain.stream_ids import ZERO, StreamId
from chatroom.store.tables import messages, rooms, users

_COLUMNS = (
    messages.c.stream_ms,
    messages.c.stream_seq,
    messages.c.user_id,
    messages.c.client_id,
    messages.c.body,
    users.c.username,
    users.c.display_name,
)
_JOINED = messages.outerjoin(users, users.c.id == messages.c.user_id)


def _after(bound: StreamId) -> sa.ColumnElement[bool]:
    return sa.or_(
        messages.c.stream_ms > bound.ms,
        sa.and_(messages.c.stream_ms == bound.ms, messages.c.stream_seq > bound.seq),
    )


def _before(bound: StreamId) -> sa.ColumnElement[bool]:
    return sa.or_(
        messages.c.stream_ms < bound.ms,
        sa.and_(messages.c.stream_ms == bound.ms, messages.c.stream_seq < bound.seq),
    )


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
    )


class ArchivedPages:
    """Reads of the `messages` table for the history merge."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

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
