"""The room directory in SQL: rooms, their members, and who may see which.

Rooms are never renamed, deleted or turned public/private, so a room found once is
cached by slug for the life of the node: the WebSocket hub asks `visible` for every frame.
A slug found missing is remembered for `unknown_ttl_s` (a couple of seconds): a client
subscribing to a room that does not exist, again and again, costs no SQL query each time.
A room created on this node is known at once; one created on another node is found here
at most `unknown_ttl_s` after someone here last asked for it.
Membership is not cached: a member removed on one node is out on every node at once.

A private room's owner adds and removes members by username, and the answer is the same
whether that username exists or not: the directory does not tell who has an account.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatroom.accounts.users_table import inserted_id, now_utc, username_key
from chatroom.domain.events import Author
from chatroom.domain.refusals import Conflict, Forbidden, room_not_found
from chatroom.domain.rooms import Room
from chatroom.domain.rules import (
    LISTING_PAGE_MAX,
    SLUG_FALLBACK_RANDOM_CHARS,
    TITLE_MAX,
    USERNAME,
    USERNAME_RULE,
    RuleError,
    check_cursor,
    check_search,
    check_slug,
    clean_label,
    fallback_slug,
    is_room_name,
    slug_from_title,
)
from chatroom.domain.users import User
from chatroom.store.tables import room_members, rooms, users

_ROOM_COLUMNS = (rooms.c.id, rooms.c.slug, rooms.c.title, rooms.c.is_private, rooms.c.owner_id)
_ROOMS_CACHED_MAX = 10_000
_MISSING_CACHED_MAX = 10_000
# A random slug collides once in about 2 billion: three tries are plenty.
_RANDOM_SLUG_TRIES = 3
_MEMBERSHIPS_PER_QUERY = 500


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
class ListingPage:
    rooms: list[ListedRoom]  # by slug
    has_more: bool


@dataclass(frozen=True, slots=True)
class MemberPage:
    members: list[Author]  # by username, whatever the case
    has_more: bool


class RoomDirectory:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        unknown_ttl_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._by_slug: dict[str, Room] = {}
        self._unknown_ttl_s = unknown_ttl_s
        self._clock = clock
        self._missing: dict[str, float] = {}  # slug -> when to ask SQL again

    async def find(self, slug: str) -> Room | None:
        """The room of this slug, visible or not."""
        room = self._by_slug.get(slug)
        if room is not None:
            return room
        if not is_room_name(slug):
            return None
        missing_until = self._missing.get(slug)
        if missing_until is not None:
            if missing_until > self._clock():
                return None
            del self._missing[slug]
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(*_ROOM_COLUMNS).where(rooms.c.slug == slug))
            ).first()
        if row is None:
            self._remember_missing(slug)
            return None
        room = _room(row)
        if len(self._by_slug) < _ROOMS_CACHED_MAX:
            self._by_slug[slug] = room
        return room

    def forget_missing(self, slug: str) -> None:
        """The room exists now (created here, or by another request): stop answering
        that it does not."""
        self._missing.pop(slug, None)

    def _remember_missing(self, slug: str) -> None:
        if self._unknown_ttl_s <= 0:
            return
        if len(self._missing) >= _MISSING_CACHED_MAX:  # a flood of made-up slugs
            now = self._clock()
            self._missing = {s: t for s, t in self._missing.items() if t > now}
            if len(self._missing) >= _MISSING_CACHED_MAX:
                return
        self._missing[slug] = self._clock() + self._unknown_ttl_s

    async def memberships(self, pairs: Collection[tuple[int, int]]) -> set[tuple[int, int]]:
        """Those of the (room id, user id) pairs that are memberships: one query per
        _MEMBERSHIPS_PER_QUERY pairs (a node's heartbeat checks every private room its
        sockets are subscribed to, DMs included)."""
        wanted = list(pairs)
        found: set[tuple[int, int]] = set()
        for start in range(0, len(wanted), _MEMBERSHIPS_PER_QUERY):
            chunk = wanted[start : start + _MEMBERSHIPS_PER_QUERY]
            query = sa.select(room_members.c.room_id, room_members.c.user_id).where(
                sa.tuple_(room_members.c.room_id, room_members.c.user_id).in_(chunk)
            )
            async with self._engine.connect() as conn:
                found.update((int(r.room_id), int(r.user_id)) for r in await conn.execute(query))
        return found

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

    async def listing(
        self,
        user: User,
        *,
        after: str | None = None,
        limit: int = LISTING_PAGE_MAX,
        search: str | None = None,
        joined_only: bool = False,
    ) -> ListingPage:
        """A page of the rooms `user` may see (public ones, and private ones they are a
        member of), by slug: the first `limit` after the slug `after` (exclusive; None:
        from the first), whose slug or title holds `search` (any case), or only the ones
        they joined."""
        membership = sa.select(room_members.c.room_id).where(room_members.c.user_id == user.id)
        joined = rooms.c.id.in_(membership)
        query = sa.select(*_ROOM_COLUMNS, joined.label("joined"))
        if joined_only:
            query = query.where(joined)
        else:
            query = query.where(sa.or_(rooms.c.is_private == sa.false(), joined))
        if after is not None:
            query = query.where(rooms.c.slug > check_cursor(after))
        if search is not None:
            words = check_search(search)
            query = query.where(
                sa.or_(
                    rooms.c.slug.contains(words.lower(), autoescape=True),
                    sa.func.lower(rooms.c.title).contains(words.lower(), autoescape=True),
                )
            )
        query = query.order_by(rooms.c.slug).limit(limit + 1)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        listed = [ListedRoom(_room(row), bool(row.joined)) for row in rows[:limit]]
        return ListingPage(listed, has_more=len(rows) > limit)

    async def owned(self, user: User) -> int:
        """How many rooms `user` owns."""
        async with self._engine.connect() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count()).select_from(rooms).where(rooms.c.owner_id == user.id)
            )
        return int(count or 0)

    async def create(
        self,
        owner: User,
        slug: object,
        title: object,
        private: bool,
        *,
        max_owned: int | None = None,
    ) -> Room:
        """A new room, owned by `owner`, who is its first member; refused (403
        `room_quota_exceeded`) when `owner` owns `max_owned` rooms already. Without a slug
        (None or ""), the title suggests one, or, in a script with no a-z/0-9, `room-` and
        a random tail (so is a suggested slug that is taken).

        A slug in use is `409 room_exists` whoever's room it is, public or private: the
        answer says the name is taken, never whose room it is or what kind. That a private
        room's name is taken is the one thing a creator can learn of it, and only as fast
        as the creation limit lets them try (web/api_rooms.py counts every attempt)."""
        checked_title = check_title(title)
        if max_owned is not None and await self.owned(owner) >= max_owned:
            raise Forbidden(
                "room_quota_exceeded", f"you own {max_owned} rooms already, the most one may"
            )
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
        return await self.insert_room(
            checked_slug, checked_title, private=private, owner_id=owner.id, members=[owner.id]
        )

    async def insert_room(
        self, slug: str, title: str, *, private: bool, owner_id: int | None, members: list[int]
    ) -> Room:
        """Store a room (checked slug and title) with its first members; 409 `room_exists`
        if the slug is taken. Either way the slug exists now: no longer remembered missing."""
        now = now_utc()
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    rooms.insert().values(
                        slug=slug,
                        title=title,
                        is_private=private,
                        owner_id=owner_id,
                        created_at=now,
                    )
                )
                room_id = inserted_id(result)
                await conn.execute(
                    room_members.insert(),
                    [{"room_id": room_id, "user_id": i, "joined_at": now} for i in members],
                )
        except IntegrityError:
            self.forget_missing(slug)
            raise Conflict("room_exists", f"the name {slug!r} is taken") from None
        self.forget_missing(slug)
        return Room(room_id, slug, title, private, owner_id)

    async def join(self, user: User, room: Room) -> bool:
        """Become a member of a public room (a private room's owner adds its members);
        False if `user` was one already."""
        if room.is_private:
            if await self.is_member(room, user):
                return False
            raise room_not_found(room.slug)
        return await self._add(room, user.id)

    async def leave(self, user: User, room: Room) -> None:
        if room.is_dm:
            raise Conflict(
                "conversation_cannot_be_left", "a direct conversation stays between its people"
            )
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

    async def add_member(self, acting: User, room: Room, username: object) -> int | None:
        """Add a user to a private room; an unknown username changes nothing, and the
        caller cannot tell the two apart. The id of the user added (None: nobody new)."""
        member = await self._manageable(acting, room, username)
        if member is not None and await self._add(room, member):
            return member
        return None

    async def remove_member(self, acting: User, room: Room, username: object) -> int | None:
        """Remove a member of a private room; the removed user's id (None: no such user)."""
        member = await self._manageable(acting, room, username)
        if member == room.owner_id:
            raise Conflict("owner_cannot_leave", "the owner of a private room cannot be removed")
        if member is not None:
            await self._remove(room, member)
        return member

    async def joined_at(self, user: User, room_ids: list[int]) -> dict[int, datetime]:
        """When the user joined each of these rooms (UTC; rooms they are not in: absent)."""
        query = sa.select(room_members.c.room_id, room_members.c.joined_at).where(
            room_members.c.user_id == user.id, room_members.c.room_id.in_(room_ids)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {int(row.room_id): row.joined_at for row in rows}

    async def participants(self, rooms_: list[Room]) -> dict[int, list[Author]]:
        """The members of each room (for direct conversations: a few each), by username."""
        query = (
            sa.select(room_members.c.room_id, users.c.id, users.c.username, users.c.display_name)
            .select_from(room_members.join(users, users.c.id == room_members.c.user_id))
            .where(room_members.c.room_id.in_([room.id for room in rooms_]))
            .order_by(users.c.username_key)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        found: dict[int, list[Author]] = {}
        for row in rows:
            found.setdefault(int(row.room_id), []).append(
                Author(int(row.id), row.username, row.display_name)
            )
        return found

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

    async def _add(self, room: Room, user_id: int) -> bool:
        """Whether the user became a member now (False: they were one already)."""
        try:
            async with self._engine.begin() as conn:
                if await self._member(conn, room.id, user_id):
                    return False
                await conn.execute(
                    room_members.insert().values(
                        room_id=room.id, user_id=user_id, joined_at=now_utc()
                    )
                )
        except IntegrityError:
            return False  # added at the same moment by another request: the same outcome
        return True

    async def _remove(self, room: Room, user_id: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                room_members.delete().where(
                    room_members.c.room_id == room.id, room_members.c.user_id == user_id
                )
            )
