"""The room directory (rooms/directory.py) on real SQL: what it asks SQL, and when."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.accounts.users_table import now_utc
from chatroom.domain.users import User
from chatroom.rooms.directory import RoomDirectory
from chatroom.store.tables import users


@contextmanager
def counted_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements `engine` runs inside the block."""
    statements: list[str] = []

    def before(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", before)


async def _owner(engine: AsyncEngine) -> User:
    async with engine.begin() as conn:
        result = await conn.execute(
            users.insert().values(
                username="owner",
                username_key="owner",
                display_name="Owner",
                password_hash="x",
                is_admin=False,
                created_at=now_utc(),
            )
        )
    return User(int(result.inserted_primary_key[0]), "owner", "Owner", is_admin=False)


async def test_a_missing_room_is_asked_of_sql_once_in_a_while(engine: AsyncEngine) -> None:
    now = [0.0]
    directory = RoomDirectory(engine, unknown_ttl_s=2.0, clock=lambda: now[0])
    with counted_statements(engine) as statements:
        for _ in range(50):
            assert await directory.find("no-such-room") is None
    assert len(statements) == 1
    now[0] = 2.5  # remembered for 2 s only
    with counted_statements(engine) as statements:
        assert await directory.find("no-such-room") is None
    assert len(statements) == 1
    # A room created on this node is known at once, though it was missing a moment ago.
    room = await directory.create(await _owner(engine), "no-such-room", "Now there is", False)
    assert await directory.find("no-such-room") == room
