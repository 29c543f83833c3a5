"""The room restrictions in force (mutes, removals), in the memory of one app node.

The send path asks this board, never SQL: a dict lookup per send. It is filled from SQL
when the hub starts, changed at once on every node by the `restricted` room signal
(hub/signals.py) that follows each change, and read from SQL again at every heartbeat,
which makes up for a signal lost with a Redis reconnect. A signal heard while such a
reload is on its way is applied again after it: the reload's rows may predate it.
An entry whose time is over counts for nothing, and the next reload drops it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from chatroom.domain.moderation import MUTE, MUTED, REMOVE, REMOVED, Restriction, refused

# Every restriction in force, as SQL has them (`RoomRestrictions.in_force`).
LoadRestrictions = Callable[[], Awaitable[list[Restriction]]]


def now_ms() -> int:
    return int(time.time() * 1000)


class RestrictionBoard:
    __slots__ = ("_by_room", "_clock", "_heard_while_loading", "_load", "_loading")

    def __init__(
        self, load: LoadRestrictions | None = None, *, clock: Callable[[], int] = now_ms
    ) -> None:
        self._load = load
        self._clock = clock  # Unix ms
        # room id -> (user id, kind) -> until (Unix ms). By room first: a send in a room
        # with no restriction at all (nearly every send) costs one lookup.
        self._by_room: dict[int, dict[tuple[int, str], int]] = {}
        self._loading = False
        self._heard_while_loading: list[Restriction] = []

    def until(self, room_id: int, user_id: int, kind: str) -> int | None:
        """When the user's `kind` restriction in the room ends, if it is in force now."""
        in_room = self._by_room.get(room_id)
        if in_room is None:
            return None
        until = in_room.get((user_id, kind))
        if until is None or until <= self._clock():
            return None
        return until

    def any_in(self, room_id: int) -> bool:
        """Whether anyone is (or was, until the next reload) restricted in the room."""
        return room_id in self._by_room

    def muted_until(self, room_id: int, user_id: int) -> int | None:
        return self.until(room_id, user_id, MUTE)

    def removed_until(self, room_id: int, user_id: int) -> int | None:
        return self.until(room_id, user_id, REMOVE)

    def apply(self, restriction: Restriction) -> None:
        """A change heard from a signal: in force until `until_ms` (a past time: lifted)."""
        self._set(restriction)
        if self._loading:
            self._heard_while_loading.append(restriction)

    async def reload(self) -> None:
        """Read every restriction in force from SQL again (without a loader: keep what
        the signals said)."""
        if self._load is None:
            return
        self._loading = True
        self._heard_while_loading = []
        try:
            found = await self._load()
        finally:
            self._loading = False
        self._by_room = {}
        for restriction in found:
            self._set(restriction)
        for restriction in self._heard_while_loading:
            self._set(restriction)
        self._heard_while_loading = []

    def _set(self, restriction: Restriction) -> None:
        room_id, key = restriction.room_id, (restriction.user_id, restriction.kind)
        if restriction.active(self._clock()):
            self._by_room.setdefault(room_id, {})[key] = restriction.until_ms
            return
        in_room = self._by_room.get(room_id)
        if in_room is not None:
            in_room.pop(key, None)
            if not in_room:
                del self._by_room[room_id]


def refusal(
    board: RestrictionBoard,
    room_id: int,
    slug: str,
    user_id: int,
    *,
    client_id: str | None = None,
    writing: bool = True,
) -> str | None:
    """The `error` frame that refuses the user's frame in the room (`writing`: a send or
    typing, which a mute refuses too; else a subscribe), or None: it may go on."""
    if not board.any_in(room_id):
        return None
    until = board.removed_until(room_id, user_id)
    if until is not None:
        return refused(REMOVED, slug, until, client_id=client_id)
    if writing:
        until = board.muted_until(room_id, user_id)
        if until is not None:
            return refused(MUTED, slug, until, client_id=client_id)
    return None
