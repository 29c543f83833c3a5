"""Rooms as one user sees them: the contract's Room with the user's membership, who is
online, their read mark and unread counts, and a direct conversation's participants.

The unread counts of a user's rooms are computed concurrently, one bounded history page
per room (rooms/unread.py); a room the user has not joined counts nothing. A member who
has no read mark in a room (they never read it: just added, or a member from before read
marks existed) has read up to the moment they joined: no write is needed at join.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from chatroom.domain.rooms import Room
from chatroom.domain.stream_ids import StreamId
from chatroom.domain.users import User
from chatroom.hub import presence
from chatroom.rooms.unread import NOTHING, Unread, unread_in
from chatroom.web.state import AppState

# Rooms counted at the same time for one room list: a user in hundreds of rooms read long
# ago must not take every SQL connection of the node.
COUNTS_AT_ONCE = 8


async def room_views(
    state: AppState, user: User, rooms: list[tuple[Room, bool]]
) -> list[dict[str, Any]]:
    """Each (room, joined) as the user sees it, in the order given."""
    counts = await presence.online_counts(state.redis, [room.slug for room, _ in rooms])
    joined_ids = [room.id for room, joined in rooms if joined]
    marks = await state.hub.read_marks.of_user(user.id, joined_ids)
    if len(marks) < len(joined_ids):
        since = await state.rooms.joined_at(user, [i for i in joined_ids if i not in marks])
        marks.update((room_id, _joined_mark(at)) for room_id, at in since.items())
    at_once = asyncio.Semaphore(COUNTS_AT_ONCE)

    async def count(room: Room, joined: bool) -> Unread:
        if not joined:
            return NOTHING
        async with at_once:
            return await unread_in(state.history, room, user.author, marks.get(room.id))

    unread = await asyncio.gather(*(count(room, joined) for room, joined in rooms))
    dms = [room for room, _ in rooms if room.is_dm]
    participants = await state.rooms.participants(dms) if dms else {}
    views = []
    for (room, joined), counted in zip(rooms, unread, strict=True):
        view = room.as_json(
            online=counts.get(room.slug, 0), joined=joined, owned=room.owner_id == user.id
        )
        view.update(counted.as_json())
        if room.is_dm:
            view["members"] = [member.as_json() for member in participants.get(room.id, [])]
        views.append(view)
    return views


async def room_view(state: AppState, user: User, room: Room, *, joined: bool) -> dict[str, Any]:
    return (await room_views(state, user, [(room, joined)]))[0]


def _joined_mark(joined_at: datetime) -> StreamId:
    """A member who never read the room has read what came before they joined."""
    return StreamId(int(joined_at.replace(tzinfo=UTC).timestamp() * 1000), 0)
