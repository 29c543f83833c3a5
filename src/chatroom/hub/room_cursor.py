"""Where one node's fan-out of a room stands, and what a stream's standing says about it.

Pure: the bus (hub/bus.py) keeps a `RoomCursor` per watched room and, before it delivers
a read, asks these functions whether Redis lost entries this node saw (`went_back`),
whether entries after the cursor are gone and must come from SQL (`missing_range`), and
how many entries the stream had up to what it delivered (`seen_after`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chatroom.domain.stream_ids import StreamId
from chatroom.streams.entries import Entry
from chatroom.streams.epochs import COUNT_CAP, Epoch, Standing


@dataclass(slots=True)
class RoomCursor:
    """Where this node's fan-out of one room stands."""

    last: StreamId  # every entry up to here was delivered (or is known not to exist)
    seen: int | None  # how many entries the stream ever had up to `last`; None: unknown
    epoch: str | None  # the epoch `last` belongs to; None: the room had none yet
    # After following a new epoch: the last id its stream kept of the one before; after
    # the connection to Redis failed: the cursor then (Redis may have restarted without
    # its last writes, with nothing else to show for it). Until this node delivers an
    # entry above it, what lies between its cursor and that entry may be messages Redis
    # lost after they were archived: they come from SQL first.
    hole: StreamId | None = None

    def after_outage(self) -> None:
        """The link to Redis failed: check SQL below the next entry delivered."""
        if self.hole is None:
            self.hole = self.last


def counted_upto(standing: Standing, counted: StreamId, entry_id: StreamId) -> int | None:
    """How many entries the stream ever had up to `entry_id`, if the standing counted the
    entries after it (`counted`: the id the count was asked after); None: unknown."""
    if entry_id != counted or not _counted_after(standing, entry_id):
        return None
    return standing.entries_added - standing.entries_after


def went_back(
    cursor: RoomCursor,
    standing: Standing,
    entries: Sequence[Entry] = (),
    counted: StreamId | None = None,
) -> bool:
    """The stream is behind what this node already saw: Redis lost its tail.

    New entries may have come after the loss, so that the stream's last id and its count
    of entries are past the cursor again: the count up to the last entry read (or up to
    the cursor) then says it, below what this node counted there."""
    if cursor.last > standing.last_generated:
        return True
    if cursor.seen is None:
        return False
    if standing.entries_added < cursor.seen:
        return True
    new = [entry_id for entry_id, _ in entries if entry_id > cursor.last]
    last = new[-1] if new else cursor.last
    upto = None if counted is None else counted_upto(standing, counted, last)
    return upto is not None and upto < cursor.seen + len(new)


def missing_range(
    cursor: RoomCursor, standing: Standing, epoch: Epoch, entries: list[Entry]
) -> tuple[StreamId, bool]:
    """Below which id the stream no longer holds what comes after the cursor, and whether
    anything may have been there: entries trimmed before this node read them, or messages
    archived before Redis lost them (the epoch's archived range).

    When the stream still starts within the read, what lies between the cursor and the
    read's first entry is the question; the count of entries trimmed says exactly whether
    any of them came after the cursor (those trimmed since the read was answered are the
    read's own). When the read was trimmed away since (the node stalled with the answer
    in hand) or there was no read, everything below the stream's first entry is in SQL,
    the read's entries too.
    """
    last_read = entries[-1][0] if entries else None
    if standing.length and last_read is not None and standing.first_id <= last_read:
        upper = entries[0][0]
        if cursor.seen is None:
            maybe = standing.first_id > cursor.last
        else:
            read_trimmed = sum(1 for entry_id, _ in entries if entry_id < standing.first_id)
            maybe = standing.trimmed - read_trimmed > cursor.seen
    else:
        upper = standing.first_id if standing.length else standing.last_generated.next()
        maybe = cursor.seen is None or standing.trimmed > cursor.seen
    if upper <= cursor.last.next():
        return upper, False  # nothing lies between
    lost = epoch.archived_only()
    if lost is not None and max(cursor.last, lost[0]).next() < min(upper, lost[1]):
        maybe = True
    return upper, maybe


def holds_all_after(standing: Standing, entry_id: StreamId) -> bool:
    """Whether no entry after `entry_id` was trimmed: the stream still starts at or below
    it, or it is the stream's last id."""
    if standing.length:
        return standing.first_id <= entry_id
    return entry_id == standing.last_generated


def _counted_after(standing: Standing, entry_id: StreamId) -> bool:
    """Whether the standing counted every entry ever added after `entry_id` (the count
    asked for, under its cap, with none of them trimmed)."""
    counted = 0 <= standing.entries_after < COUNT_CAP
    return counted and holds_all_after(standing, entry_id)


def seen_after(
    cursor: RoomCursor, standing: Standing, entries: list[Entry], filled: bool, counted: StreamId
) -> int | None:
    """The count of entries up to the last of `entries` (delivered after the cursor)."""
    last = entries[-1][0]
    if cursor.seen is not None and not filled:
        return cursor.seen + len(entries)  # the read was contiguous with the cursor
    upto = counted_upto(standing, counted, last)
    if upto is not None:
        return upto
    ids = [entry_id for entry_id, _ in entries]
    if standing.length and standing.first_id in ids:  # the first entry left is one of them
        return standing.trimmed + len(ids) - ids.index(standing.first_id)
    return None
