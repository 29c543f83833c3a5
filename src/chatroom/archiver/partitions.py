"""How one batch is shared among the archiver's parallel SQL writers: by room, with no
I/O.

Each writer is one connection and one transaction; a room's entries (its messages, its
changes and its dead letters) all go to the same writer, in the order they were read, so
that per room nothing changes: its rows land in stream order, a change is applied in the
transaction that holds its message, a duplicate client_id (unique per room and sender) is
found in the transaction that holds both copies. Rooms are dealt out biggest first, each
to the writer with the fewest items so far, so that the writers finish about together.

Every writer also applies the edits and deletes held until their message arrives
(store/change_writes.py): each only those of its own rooms, and the first one those of
every room in no partition of this batch as well, so that no two transactions of one
batch update the same message rows (they would wait on each other's locks), and together
they still cover every room, as one writer alone does.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")
L = TypeVar("L")
Room = TypeVar("Room", bound=Hashable)


@dataclass(frozen=True, slots=True)
class HeldScope:
    """Which rooms' held changes a writer applies: `rooms` (room ids) when `only`, else
    every room but those (the first writer's: its own and the batch's absent rooms)."""

    rooms: frozenset[int]
    only: bool

    def covers(self, room_id: int) -> bool:
        return (room_id in self.rooms) == self.only


@dataclass(slots=True)
class Share(Generic[R, L]):
    """One writer's part of a batch."""

    rows: list[R]
    letters: list[L]
    room_ids: set[int]  # the SQL ids of its rooms (rows only: letters may have none)
    held: HeldScope | None = None  # None: every room (a single writer)


def share_by_room(
    rows: Sequence[R],
    letters: Sequence[L],
    writers: int,
    *,
    room_of_row: Callable[[R], str],
    room_of_letter: Callable[[L], str | None],
    room_id_of_row: Callable[[R], int],
) -> list[Share[R, L]]:
    """The batch's rows and dead letters split among at most `writers` writers, by room,
    order kept within each; no empty share. One share (held scope None) when there is
    one writer or one room."""
    sizes: dict[str | None, int] = {}
    for row in rows:
        room: str | None = room_of_row(row)
        sizes[room] = sizes.get(room, 0) + 1
    for letter in letters:
        room = room_of_letter(letter)
        sizes[room] = sizes.get(room, 0) + 1
    if writers <= 1 or len(sizes) <= 1:
        ids = {room_id_of_row(row) for row in rows}
        return [Share(list(rows), list(letters), ids)] if sizes else []
    count = min(writers, len(sizes))
    load = [0] * count
    writer_of: dict[str | None, int] = {}
    # Biggest room first, ties by name: the same batch is always shared the same way.
    for room, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0] or "")):
        lightest = min(range(count), key=lambda w: (load[w], w))
        writer_of[room] = lightest
        load[lightest] += size
    shares: list[Share[R, L]] = [Share([], [], set()) for _ in range(count)]
    for row in rows:
        share = shares[writer_of[room_of_row(row)]]
        share.rows.append(row)
        share.room_ids.add(room_id_of_row(row))
    for letter in letters:
        shares[writer_of[room_of_letter(letter)]].letters.append(letter)
    others: set[int] = set()
    for share in shares[1:]:
        others |= share.room_ids
        share.held = HeldScope(frozenset(share.room_ids), only=True)
    shares[0].held = HeldScope(frozenset(others), only=False)
    return shares
