"""A delivery (a stream entry as the archiver received it) and the batching decisions,
with no I/O: when to flush, how long a read may block, and which entries become rows and
which become dead letters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from chatroom.domain.events import EVENT_FIELD, ChangeEvent, InvalidEvent, StreamEvent, decode_event
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
    """A batch split into what becomes a row, what becomes a dead letter, and the
    suspects: entries delivered more than `max_deliveries` times, archived apart."""

    rows: list[tuple[Delivery, int, StreamEvent]] = field(default_factory=list)
    dead: list[tuple[Delivery, str]] = field(default_factory=list)
    deleted: list[Delivery] = field(default_factory=list)
    suspects: list[Delivery] = field(default_factory=list)


DELETED_REASON = "the entry was deleted from the stream before it was archived"


def is_suspect(entry: Delivery, max_deliveries: int) -> bool:
    """Delivered more than `max_deliveries` times without being archived: it may be what
    keeps killing an archiver, or only the victim of crashes and restarts. A delivery
    count is a symptom, not a verdict: a suspect is archived apart, never dead-lettered
    for its count."""
    return entry.deliveries > max_deliveries


def suspects_in_order(suspects: list[Delivery]) -> list[Delivery]:
    """The order to try suspects in, one at a time: the least tried first, so that one
    that kills the archiver each time (its count is raised before each try) goes last
    and never holds back the others."""
    return sorted(suspects, key=lambda entry: (entry.deliveries, entry.room, entry.id))


def fate(entry: Delivery, room_ids: dict[str, int]) -> tuple[int, StreamEvent] | str:
    """One live entry's fate: (room id, event) for a row, or the dead-letter reason.
    Whatever goes wrong while looking at it is this entry's problem: a reason, never an
    error out of here."""
    try:
        room_id = room_ids.get(entry.room)
        if room_id is None:
            return f"unknown room {entry.room!r}: no such row in rooms"
        event = decode_event(entry.room, entry.fields)
        if isinstance(event, ChangeEvent) and event.target >= entry.id:
            return f"target {event.target} is not a message before the {event.type}"
        return room_id, event
    except InvalidEvent as exc:
        return f"invalid event: {exc}"
    except Exception as exc:
        return f"could not be triaged: {type(exc).__name__}: {exc}"[:300]


def triage(entries: list[Delivery], room_ids: dict[str, int], max_deliveries: int) -> Triage:
    """Decide each entry's fate; an entry's problem never affects another entry. Suspects
    are set apart undecoded: they are looked at alone, after the rest is archived."""
    result = Triage()
    for entry in entries:
        if entry.deleted:
            result.deleted.append(entry)
            result.dead.append((entry, DELETED_REASON))
            continue
        if is_suspect(entry, max_deliveries):
            result.suspects.append(entry)
            continue
        found = fate(entry, room_ids)
        if isinstance(found, str):
            result.dead.append((entry, found))
        else:
            result.rows.append((entry, *found))
    return result


def missing_target_reason(event: ChangeEvent) -> str:
    return f"target message {event.target} of the {event.type} does not exist in {event.room}"


def split_for_retry(items: list[T]) -> tuple[list[T], list[T]]:
    """Halves of a batch SQL rejected, to find the rejected row in log2(n) steps."""
    middle = len(items) // 2
    return items[:middle], items[middle:]
