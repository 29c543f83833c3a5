"""The room directory in SQL: rooms, their members, and who may see which.

Rooms are never renamed, deleted or turned public/private, so a room found once is
cached by slug for the life of the node: the WebSocket hub asks `visible` for every frame.
Membership is not cached: a member removed on one node is out on every node at once.

A private room's owner adds and removes members by username, and the answer is the same
whether that username exists or not: the directory does not tell who has an account.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatroom.accounts.users_table import inserted_id, now_utc, username_key
from chatroom.domain.events import Author
from chatroom.domain.refusals import Conflict, Forbidden, room_not_found
from chatroom.domain.rooms import Room
from chatroom.domain.rules import (
    SLUG,
    SLUG_FALLBACK_RANDOM_CHARS,
    TITLE_MAX,
    USERNAME,
    USERNAME_RULE,
    RuleError,
    check_slug,
    clean_label,
    fallback_slug,
    slug_from_title,
)
from chatroom.domain.users import User
from chatroom.store.tables import room_members, rooms, users

_ROOM_COLUMNS = (rooms.c.id, rooms.c.slug, rooms.c.title, rooms.c.is_private, rooms.c.owner_id)
_ROOMS_CACHED_MAX = 10_000
# A random slug collides once in about 2 billion: three tries are plenty.
_RANDOM_SLUG_TRIES = 3


def _random_slug() -> str:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    tail = "".join(secrets.choice(alphabet) for _ in range(SLUG_FALLBACK_RANDOM_CHARS))
    return fallback_slug(tail)


def _room(row: sa.Row[*tuple[Any, ...]]) -> Room:
    owner = row.owner_id
    return Room(
        id=int(row.id),
        slug=row.slug,
        title=row.title,
        is_private=bool(row.is_private),
        owner_id=None if owner is None else int(owner),
    )


def check_title(title: object) -> str:
    return clean_label(title, field="title", max_chars=TITLE_MAX)


@dataclass(frozen=True, slots=True)
class ListedRoom:
    room: Room
    joined: bool


@dataclass(frozen=True, slots=True)
class MemberPage:
    members: list[Author]  # by username, whatever the case
    has_more: bool


class RoomDirectory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._by_slug: dict[str, Room] = {}

    async def find(self, slug: str) -> Room | None:
        """The room of this slug, visible or not."""
        room = self._by_slug.get(slug)
        if room is not None:
            return room
        if not isinstance(slug, str) or not SLUG.match(slug):
            return None
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(*_ROOM_COLUMNS).where(rooms.c.slug == slug))
            ).first()
        if row is None:
            return None
        room = _room(row)
        if len(self._by_slug) < _ROOMS_CACHED_MAX:
            self._by_slug[slug] = room
        return room

    async def is_member(self, room: Room, user: User) -> bool:
        async with self._engine.connect() as conn:
            return await self._member(conn, room.id, user.id)

    async def visible(self, user: User, slug: str) -> Room | None:
        """The room if `user` may see it (and so read and write it): public, or private
        with `user` a member. None for an unknown room and for a private room `user` is not
        a member of: the two must look the same from outside."""
        room = await self.find(slug)
        if room is None:
            return None
        if room.is_private and not await self.is_member(room, user):
            return None
        return room

    async def require_visible(self, user: User, slug: str) -> Room:
        room = await self.visible(user, slug)
        if room is None:
            raise room_not_found(slug)
        return room

    async def listing(self, user: User) -> list[ListedRoom]:
        """Public rooms and the private rooms `user` is a member of, by slug."""
        membership = sa.select(room_members.c.room_id).where(room_members.c.user_id == user.id)
        query = (
            sa.select(*_ROOM_COLUMNS, rooms.c.id.in_(membership).label("joined"))
            .where(sa.or_(rooms.c.is_private == sa.false(), rooms.c.id.in_(membership)))
            .order_by(rooms.c.slug)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [ListedRoom(_room(row), bool(row.joined)) for row in rows]

    async def create(self, owner: User, slug: object, title: object, private: bool) -> Room:
        """A new room, owned by `owner`, who is its first member. Without a slug (None or
        ""), the title suggests one, or, in a script with no a-z/0-9, `room-` and a random
        tail (so is a suggested slug that is taken)."""
        checked_title = check_title(title)
        if slug is None or slug == "":
            suggested = slug_from_title(checked_title)
            if suggested is not None:
                try:
                    return await self._insert(owner, suggested, checked_title, private)
                except Conflict:
                    pass
            for attempt in range(_RANDOM_SLUG_TRIES):
                try:
                    return await self._insert(owner, _random_slug(), checked_title, private)
                except Conflict:
                    if attempt == _RANDOM_SLUG_TRIES - 1:
                        raise
        return await self._insert(owner, check_slug(slug), checked_title, private)

    async def _insert(
        self, owner: User, checked_slug: str, checked_title: str, private: bool
    ) -> Room:
        now = now_utc()
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    rooms.insert().values(
                        slug=checked_slug,
                        title=checked_title,
                        is_private=private,
                        owner_id=owner.id,
                        created_at=now,
                    )
                )
                room_id = inserted_id(result)
                await conn.execute(
                    room_members.insert().values(room_id=room_id, user_id=owner.id, joined_at=now)
                )
        except IntegrityError:
            raise Conflict("room_exists", f"the room {checked_slug!r} exists already") from None
        return Room(room_id, checked_slug, checked_title, private, owner.id)

    async def join(self, user: User, room: Room) -> None:
        """Become a member of a public room (a private room's owner adds its members)."""
        if room.is_private:
            if await self.is_member(room, user):
                return
            raise room_not_found(room.slug)
        await self._add(room, user.id)

    async def leave(self, user: User, room: Room) -> None:
        if room.owner_id == user.id and room.is_private:
            raise Conflict("owner_cannot_leave", "the owner of a private room cannot leave it")
        await self._remove(room, user.id)

    async def members(self, room: Room, *, after: str | None, limit: int) -> MemberPage:
        """A page of the room's members, by username: the first `limit` after the username
        `after` (exclusive; None: from the first)."""
        query = (
            sa.select(users.c.id, users.c.username, users.c.display_name)
            .select_from(room_members.join(users, users.c.id == room_members.c.user_id))
            .where(room_members.c.room_id == room.id)
        )
        if after is not None:
            if not USERNAME.match(after):
                raise RuleError("invalid_after", f"after must be a username: {USERNAME_RULE}")
            query = query.where(users.c.username_key > username_key(after))
        query = query.order_by(users.c.username_key).limit(limit + 1)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        members = [Author(int(r.id), r.username, r.display_name) for r in rows[:limit]]
        return MemberPage(members, has_more=len(rows) > limit)

    async def add_member(self, acting: User, room: Room, username: object) -> None:
        """Add a user to a private room; an unknown username changes nothing, and the
        caller cannot tell the two apart."""
        member = await self._manageable(acting, room, username)
        if member is not None:
            await self._add(room, member)

    async def remove_member(self, acting: User, room: Room, username: object) -> int | None:
        """Remove a member of a private room; the removed user's id (None: no such user)."""
        member = await self._manageable(acting, room, username)
        if member == room.owner_id:
            raise Conflict("owner_cannot_leave", "the owner of a private room cannot be removed")
        if member is not None:
            await self._remove(room, member)
        return member

    async def _manageable(self, acting: User, room: Room, username: object) -> int | None:
        """The id of the user `acting` may add to or remove from `room` (None: nobody has
        that username)."""
        if room.owner_id != acting.id:
            raise Forbidden("forbidden", "only the room's owner manages its members")
        if not room.is_private:
            raise Conflict(
                "room_is_public", "a public room has no member list to manage: anyone may join"
            )
        if not isinstance(username, str) or not USERNAME.match(username):
            raise RuleError("invalid_username", f"a username is {USERNAME_RULE}")
        async with self._engine.connect() as conn:
            user_id = await conn.scalar(
                sa.select(users.c.id).where(users.c.username_key == username_key(username))
            )
        return None if user_id is None else int(user_id)

    async def _member(self, conn: AsyncConnection, room_id: int, user_id: int) -> bool:
        found = await conn.scalar(
            sa.select(room_members.c.user_id).where(
                room_members.c.room_id == room_id, room_members.c.user_id == user_id
            )
        )
        return found is not None

    async def _add(self, room: Room, user_id: int) -> None:
        try:
            async with self._engine.begin() as conn:
                if await self._member(conn, room.id, user_id):
                    return
                await conn.execute(
                    room_members.insert().values(
                        room_id=room.id, user_id=user_id, joined_at=now_utc()
                    )
                )
        except IntegrityError:
            return  # added at the same moment by another request: the outcome is the same

    async def _remove(self, room: Room, user_id: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                room_members.delete().where(
                    room_members.c.room_id == room.id, room_members.c.user_id == user_id
                )
            )
