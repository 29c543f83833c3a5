"""Direct conversations: private rooms between a few people (2 to `DM_PEOPLE_MAX`), started
from a username, created on demand and found again.

A conversation's slug is `dm.` and a digest of its people's ids, sorted: the same people
always name the same conversation (so starting it again finds it), and no room's slug can
be one (a room's slug has no `.`). It has no owner: nobody adds or removes its people,
and nobody leaves it. Its title is its people's display names when it was started; a
client shows the others' current names from `members`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.accounts.users_table import username_key
from chatroom.domain.refusals import Conflict, NotFound
from chatroom.domain.rooms import DM_PREFIX, Room
from chatroom.domain.rules import DM_PEOPLE_MAX, TITLE_MAX, USERNAME, RuleError
from chatroom.domain.users import User
from chatroom.rooms.directory import RoomDirectory
from chatroom.store.tables import users


def dm_slug(user_ids: list[int]) -> str:
    """The conversation of exactly these people (order and repeats do not matter)."""
    key = ",".join(str(i) for i in sorted(set(user_ids)))
    return DM_PREFIX + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class Conversation:
    room: Room
    people: list[int]  # every participant's id, the starter's included
    started: bool  # False: it existed already


class DirectMessages:
    def __init__(self, engine: AsyncEngine, directory: RoomDirectory) -> None:
        self._engine = engine
        self._directory = directory

    async def start(self, starter: User, usernames: object) -> Conversation:
        """The conversation of `starter` and these users: found, or started now."""
        if (
            not isinstance(usernames, list)
            or not usernames
            or not all(isinstance(name, str) and USERNAME.match(name) for name in usernames)
        ):
            raise RuleError("invalid_usernames", "usernames is a list of 1 or more usernames")
        keys = {username_key(name) for name in usernames} - {username_key(starter.username)}
        if not keys:
            raise RuleError("invalid_usernames", "a conversation needs someone besides you")
        if len(keys) + 1 > DM_PEOPLE_MAX:
            raise RuleError(
                "invalid_usernames", f"a conversation holds at most {DM_PEOPLE_MAX} people"
            )
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(users.c.id, users.c.username_key, users.c.display_name).where(
                        users.c.username_key.in_(keys)
                    )
                )
            ).all()
        missing = keys - {row.username_key for row in rows}
        if missing:
            raise NotFound("user_not_found", f"there is no user {sorted(missing)[0]!r}")
        people = sorted({starter.id, *(int(row.id) for row in rows)})
        slug = dm_slug(people)
        room = await self._directory.find(slug)
        if room is not None:
            return Conversation(room, people, started=False)
        names = [starter.display_name, *sorted(row.display_name for row in rows)]
        title = ", ".join(names)[:TITLE_MAX]
        try:
            room = await self._directory.insert_room(
                slug, title, private=True, owner_id=None, members=people
            )
        except Conflict:  # started at the same moment by another request
            found = await self._directory.find(slug)
            if found is None:
                raise
            return Conversation(found, people, started=False)
        return Conversation(room, people, started=True)
