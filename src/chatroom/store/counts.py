"""Counts for the operator: archived messages and dead letters per room."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.store.tables import dead_letters, messages, rooms


async def room_ids(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(rooms.c.slug, rooms.c.id))).all()
    return {row.slug: row.id for row in rows}


async def public_rooms(engine: AsyncEngine) -> frozenset[str]:
    """The slugs of the public rooms (the only ones /metrics names)."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(sa.select(rooms.c.slug).where(rooms.c.is_private == sa.false()))
        ).all()
    return frozenset(row.slug for row in rows)


async def archived_per_room(engine: AsyncEngine) -> dict[str, int]:
    query = (
        sa.select(rooms.c.slug, sa.func.count(messages.c.id))
        .select_from(rooms.join(messages, messages.c.room_id == rooms.c.id))
        .group_by(rooms.c.slug)
    )
    async with engine.connect() as conn:
        return {slug: int(count) for slug, count in (await conn.execute(query)).all()}


async def dead_letters_per_room(engine: AsyncEngine) -> dict[str, int]:
    query = sa.select(dead_letters.c.room_slug, sa.func.count(dead_letters.c.id)).group_by(
        dead_letters.c.room_slug
    )
    async with engine.connect() as conn:
        return {str(slug): int(count) for slug, count in (await conn.execute(query)).all()}
