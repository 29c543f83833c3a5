"""The `users` table: create a user, find one by name, renew a password hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.domain.refusals import Conflict
from chatroom.domain.users import User
from chatroom.store.tables import room_members, rooms, users


def username_key(username: str) -> str:
    """Usernames are unique without regard to case: `Alice` and `alice` are one name."""
    return username.lower()


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def inserted_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the database returned no id for the new row")
    return int(key[0])


@dataclass(frozen=True, slots=True)
class StoredUser:
    user: User
    password_hash: str


def _user(row: sa.Row[*tuple[Any, ...]]) -> User:
    return User(
        id=int(row.id),
        username=row.username,
        display_name=row.display_name,
        is_admin=bool(row.is_admin),
    )


_COLUMNS = (users.c.id, users.c.username, users.c.display_name, users.c.is_admin)


class UsersTable:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self, username: str, display_name: str, password_hash: str, *, join: str
    ) -> User:
        """Insert a user, a member of the room `join` from the start; the very first user
        becomes an admin. Raises Conflict when the name is taken."""
        try:
            async with self._engine.begin() as conn:
                # Registrations take turns on the joined room's row (MySQL/MariaDB; SQLite
                # has one writer anyway): two first users at once cannot both be admins.
                room_id = await conn.scalar(
                    sa.select(rooms.c.id).where(rooms.c.slug == join).with_for_update()
                )
                result = await conn.execute(
                    users.insert().values(
                        username=username,
                        username_key=username_key(username),
                        display_name=display_name,
                        password_hash=password_hash,
                        is_admin=False,
                        created_at=now_utc(),
                    )
                )
                user_id = inserted_id(result)
                earlier = await conn.scalar(
                    sa.select(sa.func.count()).select_from(users).where(users.c.id < user_id)
                )
                is_admin = earlier == 0
                if is_admin:
                    await conn.execute(
                        users.update().where(users.c.id == user_id).values(is_admin=True)
                    )
                if room_id is not None:
                    await conn.execute(
                        room_members.insert().values(
                            room_id=room_id, user_id=user_id, joined_at=now_utc()
                        )
                    )
        except IntegrityError:
            raise Conflict("username_taken", f"the username {username!r} is taken") from None
        return User(user_id, username, display_name, is_admin)

    async def by_username(self, username: str) -> StoredUser | None:
        query = sa.select(*_COLUMNS, users.c.password_hash).where(
            users.c.username_key == username_key(username)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return StoredUser(_user(row), row.password_hash)

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                users.update().where(users.c.id == user_id).values(password_hash=password_hash)
            )

    async def set_display_name(self, user_id: int, display_name: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                users.update().where(users.c.id == user_id).values(display_name=display_name)
            )
