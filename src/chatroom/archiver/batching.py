"""A delivery (a stream entry as the archiver received it) and the batching decisions,
with no I/O: when to flush, how long a read may block, and which entries become rows and
which become dead letters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from chatroom.domain.events import EVENT_FIELD, InvalidEvent, MessageEvent, decode_event
from chatroom.domain.stream_ids import StreamId

T = TypeVar("T")


@dataclass(slots=True)  # not frozen: a frozen init costs more, and there is one per entry
class Delivery:
    """One entry of a room stream as delivered to this archiver by the consumer group,
    with how many times the group has delivered it (never changed after)."""

    room: str
    id: StreamId
    fields: dict[bytes, bytes]  # empty: the entry was deleted while pending
    deliveries: int = 1

    @property
    def deleted(self) -> bool:
        # XADD needs at least one field, so no live entry has none.
        return not self.fields

    @property
    def raw(self) -> bytes:
        """The entry's bytes as stored, for the dead-letter table."""
        if len(self.fields) == 1 and EVENT_FIELD in self.fields:
            return self.fields[EVENT_FIELD]
        return b"\n".join(k + b"=" + v for k, v in sorted(self.fields.items()))


@dataclass(slots=True)
class BatchClock:
    """Flush at `max_entries` entries or `max_wait_ms` after the first entry arrived."""

    max_entries: int
    max_wait_ms: int
    idle_block_ms: int
    count: int = 0
    first_at_ms: float | None = None

    def add(self, entries: int, now_ms: float) -> None:
        if entries and self.first_at_ms is None:
            self.first_at_ms = now_ms
        self.count += entries

    def full(self) -> bool:
        return self.count >= self.max_entries

    def due(self, now_ms: float) -> bool:
        if self.full():
            return True
        return self.first_at_ms is not None and now_ms - self.first_at_ms >= self.max_wait_ms

    def room_left(self) -> int:
        return max(0, self.max_entries - self.count)

    def block_ms(self, now_ms: float) -> int:
        """How long the next read may wait for entries: the idle block while the batch is
        empty, else what is left of the flush delay (never 0: BLOCK 0 waits forever)."""
        if self.first_at_ms is None:
            return max(1, self.idle_block_ms)
        return max(1, int(self.max_wait_ms - (now_ms - self.first_at_ms)))

    def reset(self) -> None:
        self.count = 0
        self.first_at_ms = None


@dataclass(slots=True)
class Triage:
    """A batch split into what becomes a row and what becomes a dead letter."""

    rows: list[tuple[Delivery, int, MessageEvent]] = field(default_factory=list)
    dead: list[tuple[Delivery, str]] = field(default_factory=list)
    deleted: list[Delivery] = field(default_factory=list)


DELETED_REASON = "the entry was deleted from the stream before it was archived"


def too_many_deliveries(deliveries: int, max_deliveries: int) -> str | None:
    """The dead-letter reason for an entry delivered more than `max_deliveries` times
    without being archived (it may be what kills the archiver), or None."""
    if deliveries > max_deliveries:
        return f"delivered {deliveries} times without being archived (limit {max_deliveries})"
    return None


def triage(entries: list[Delivery], room_ids: dict[str, int], max_deliveries: int) -> Triage:
    """Decide each entry's fate; an entry's problem never affects another entry."""
    result = Triage()
    for entry in entries:
        if entry.deleted:
            result.deleted.append(entry)
            result.dead.append((entry, DELETED_REASON))
            continue
        reason = too_many_deliveries(entry.deliveries, max_deliveries)
        if reason is not None:
            result.dead.append((entry, reason))
            continue
        room_id = room_ids.get(entry.room)
        if room_id is None:
            result.dead.append((entry, f"unknown room {entry.room!r}: no such row in rooms"))
            continue
        try:
            event = decode_event(entry.room, entry.fields)
        except InvalidEvent as exc:
            result.dead.append((entry, f"invalid event: {exc}"))
            continue
        result.rows.append((entry, room_id, event))
    return result


def split_for_retry(items: list[T]) -> tuple[list[T], list[T]]:
    """Halves of a batch SQL rejected, to find the rejected row in log2(n) steps."""
    middle = len(items) // 2
    return items[:middle], items[middle:]
