"""The archiver's write pipeline: batches in the order they were read, each one
triaged, written in one SQL transaction, committed, then acknowledged.

    submit(entries)   triage: each entry becomes a row or a dead letter with its reason
                      (CPU work, done while the batch before is still in SQL)
    transaction       every row (one multi-row upsert) and every dead letter of the batch;
                      a resend SQL already holds under an earlier stream id becomes a dead
                      letter too, in the same transaction (`late_copy_reason`)
                      (with parallel SQL writers, one such transaction per writer at
                      once, each holding whole rooms: archiver/partitions.py)
    commit, then XACK every entry of the batch (one pipeline for all rooms), once every
                      writer of the batch committed

Overlap: batch k+1 is written while batch k is acknowledged, never before k committed,
so a room's rows land in stream order. What SQL refuses is isolated and dead-lettered
alone, outages are waited out (`sql_writes.BatchWriter`); stop asked meanwhile leaves
the batch pending for the next run.

Suspects, entries delivered more than `max_deliveries` times (each crash or restart of
an archiver holding a batch adds a delivery to all of it), are not dead-lettered for it:
once the rest of their batch is committed and acknowledged, each is tried alone, in its
own transaction, least tried first, with a warning. A suspect that is itself bad is
dead-lettered with its reason, like any entry; one that is valid is archived.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.archiver import metrics
from chatroom.archiver.batching import (
    Delivery,
    Triage,
    fate,
    missing_target_reason,
    suspects_in_order,
    triage,
)
from chatroom.archiver.failpoints import Failpoints
from chatroom.archiver.held_sweeps import HeldSweeps
from chatroom.archiver.partitions import Share, share_by_room
from chatroom.archiver.redis_streams import GroupStreams
from chatroom.archiver.retries import Dependency, Stopped
from chatroom.archiver.sql_writes import BatchWriter, Row, dead_letter
from chatroom.archiver.upkeep import Progress
from chatroom.domain.events import MessageEvent, StreamEvent
from chatroom.domain.stream_ids import StreamId
from chatroom.store.archive_writes import ArchivedMessage, DeadLetter, archived_ids
from chatroom.store.change_writes import ArchivedChange
from chatroom.store.counts import public_rooms, room_ids

log = logging.getLogger(__name__)

T = TypeVar("T")

# Entries triaged between two turns of the event loop (see `WritePipeline._triage`).
TRIAGE_SLICE = 100
# Turns of the event loop a committed batch leaves to the next one before its XACK.
NEXT_FIRST_TURNS = 2


def _room_of_row(row: Row) -> str:
    return row[0].room


def _room_id_of_row(row: Row) -> int:
    return row[1].room_id


def _room_of_letter(letter: DeadLetter) -> str | None:
    return letter.room_slug


class RedisCall(Protocol):
    """Runs a Redis operation until it succeeds (`GroupReader.call`)."""

    async def __call__(self, operation: Callable[[], Awaitable[T]], /) -> T: ...


# Told, after each acknowledgement, which entries this archiver archived as rows: room,
# stream ids (the attribution of work among archivers).
ArchivedHook = Callable[[str, list[StreamId]], None]


@dataclass(slots=True)
class Totals:
    """What one archiver did, over all its runs."""

    archived: int = 0  # rows
    dead_lettered: int = 0
    missing: int = 0  # pending entries found deleted
    suspects: int = 0  # entries tried alone after more than max_deliveries deliveries


@dataclass(slots=True)
class _Prepared:
    """A triaged batch, ready for its transaction; its suspects are tried after it."""

    entries: list[Delivery]  # all but the suspects
    rows: list[Row]
    letters: list[DeadLetter]
    deleted: list[Delivery]
    suspects: list[Delivery]
    started: float


class WritePipeline:
    """Writes one archiver run's batches, one transaction at a time, in read order."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        writes: AsyncEngine,
        streams: GroupStreams,
        redis_call: RedisCall,
        sql: Dependency,
        failpoints: Failpoints,
        max_deliveries: int,
        room_ids: dict[str, int],
        labels: metrics.RoomLabels,
        totals: Totals,
        progress: Progress,
        on_archived: ArchivedHook | None = None,
        writers: int = 1,
    ) -> None:
        self._engine = engine  # where room ids are looked up
        # One per parallel SQL writer: a batch is shared among them by room. When their
        # transactions look for held changes is decided per batch, for all of them.
        self._sweeps = HeldSweeps()
        self._writers = [
            BatchWriter(writes, sql, failpoints, self._sweeps) for _ in range(max(1, writers))
        ]
        self._streams = streams
        self._redis_call = redis_call
        self._sql = sql
        self._failpoints = failpoints
        self._max_deliveries = max_deliveries
        self._room_ids = room_ids  # slug -> id, reloaded when an unknown room shows up
        self._labels = labels  # the public rooms, reloaded with the ids
        self._totals = totals
        self._progress = progress
        self._on_archived = on_archived
        # The batch being written (then acknowledged), and the event set when its
        # transaction ended; and the batch before it, committed and being acknowledged.
        self._inflight: asyncio.Task[int] | None = None
        self._inflight_written = asyncio.Event()
        self._acking: asyncio.Task[int] | None = None

    @property
    def writer_idle(self) -> bool:
        """No transaction under way: the next batch would be written at once."""
        return self._inflight is None or self._inflight_written.is_set()

    async def submit(self, entries: list[Delivery]) -> None:
        """Triage `entries` (CPU work, done while the batch before them is still in SQL),
        then write them once that batch is done: batches are written in read order."""
        if not entries:
            return
        self._failpoints.reach("after_read")
        prepared = await self._prepare(entries)
        await self._writer_free()
        written = asyncio.Event()
        self._inflight = asyncio.create_task(
            self._archive(prepared, written), name="archiver-batch"
        )
        self._inflight_written = written

    async def finish(self) -> None:
        """Wait until every batch in hand is written and acknowledged."""
        await self._writer_free()
        acking, self._acking = self._acking, None
        if acking is not None:
            await acking

    async def sweep_held(self, *, finishing: bool = False) -> None:
        """Look for held changes to apply in a transaction of its own, if one may be
        waiting (archiver/held_sweeps.py): when idle, at most every second; `finishing`
        (a drain's or a run's end, the batches all written), now. Not while SQL is down:
        the next look applies them."""
        now = time.monotonic()
        due = self._sweeps.pending(now) if finishing else self._sweeps.sweep_due(now)
        if due and self.writer_idle and not self._sql.down:
            await self._writers[0].sweep()

    async def close(self) -> None:
        """Give the writers' kept SQL connections back (the run ends; `finish` first)."""
        for writer in self._writers:
            await writer.close()

    async def _writer_free(self) -> None:
        """Wait until the batch in SQL has committed (its XACK may still be under way: it
        overlaps the next write) and the batch before it is acknowledged. A batch whose
        write failed raises here, before any later batch is written."""
        acking, self._acking = self._acking, None
        if acking is not None:
            await acking
        task, self._inflight = self._inflight, None
        if task is None:
            return
        await self._inflight_written.wait()
        if task.done():
            await task  # its error, if any
        else:
            self._acking = task

    async def _known_rooms(self, entries: Iterable[Delivery]) -> None:
        """Reload room ids when an entry names a room not known yet."""
        named = {e.room for e in entries if not e.deleted}
        if not named.issubset(self._room_ids.keys()):
            found = await self._sql.call(partial(room_ids, self._engine))
            self._labels.public = await self._sql.call(partial(public_rooms, self._engine))
            self._room_ids.clear()
            self._room_ids.update(found)

    async def _prepare(self, entries: list[Delivery]) -> _Prepared:
        await self._known_rooms(entries)
        plan = await self._triage(entries)
        rows, orphans = await self._rows(plan.rows)
        letters = [dead_letter(entry, reason) for entry, reason in [*plan.dead, *orphans]]
        if plan.suspects:
            apart = {(e.room, e.id) for e in plan.suspects}
            entries = [e for e in entries if (e.room, e.id) not in apart]
        return _Prepared(entries, rows, letters, plan.deleted, plan.suspects, time.perf_counter())

    async def _triage(self, entries: list[Delivery]) -> Triage:
        """`batching.triage`, a slice at a time, letting the event loop run between
        slices: this runs while the batch before is in SQL, and that transaction's next
        statement (or its commit) must not wait for a whole batch's decoding to end."""
        plan = Triage()
        for start in range(0, len(entries), TRIAGE_SLICE):
            if start:
                await asyncio.sleep(0)
            part = triage(
                entries[start : start + TRIAGE_SLICE], self._room_ids, self._max_deliveries
            )
            plan.rows += part.rows
            plan.dead += part.dead
            plan.deleted += part.deleted
            plan.suspects += part.suspects
        return plan

    async def _rows(
        self, found: list[tuple[Delivery, int, StreamEvent]]
    ) -> tuple[list[Row], list[tuple[Delivery, str]]]:
        """The SQL rows of triaged entries, and the changes to no message at all (with
        their dead-letter reason). A change whose message is in the batch, in SQL or
        still in the stream is kept: applied now, or once its message is archived. The
        rows' SQL values are made here, off the transaction's path (a slice at a time,
        as in `_triage`)."""
        rows: list[Row] = []
        holds_changes = False
        for index, (entry, room_id, event) in enumerate(found):
            if index and not index % TRIAGE_SLICE:
                await asyncio.sleep(0)
            if isinstance(event, MessageEvent):
                message = ArchivedMessage(
                    room_id, entry.id, event.author.id, event.client_id, event.body, event.reply_to
                )
                message.values()  # made now and kept: the transaction only sends them
                rows.append((entry, message))
            else:
                holds_changes = True
                rows.append((entry, ArchivedChange(room_id, entry.id, event)))
        if not holds_changes:
            return rows, []
        batch_messages = {
            (entry.room, entry.id) for entry, row in rows if isinstance(row, ArchivedMessage)
        }
        wanted = {
            (entry.room, change.event.target)
            for entry, change in rows
            if isinstance(change, ArchivedChange)
            and (entry.room, change.event.target) not in batch_messages
        }
        if not wanted:
            return rows, []
        existing = await self._existing_messages(wanted)
        orphans: list[tuple[Delivery, str]] = []
        kept: list[Row] = []
        for entry, row in rows:
            if isinstance(row, ArchivedChange):
                key = (entry.room, row.event.target)
                if key in wanted and key not in existing:
                    orphans.append((entry, missing_target_reason(row.event)))
                    continue
            kept.append((entry, row))
        return kept, orphans

    async def _existing_messages(
        self, wanted: set[tuple[str, StreamId]]
    ) -> set[tuple[str, StreamId]]:
        """Which of these messages exist: in the stream (as a message), else in SQL. In
        that order: an entry gone from the stream was trimmed after its commit."""
        ordered = sorted(wanted)
        in_stream = await self._redis_call(partial(self._streams.messages_held, ordered))
        rest = [key for key in ordered if key not in in_stream]
        if not rest:
            return in_stream
        by_room: dict[int, list[StreamId]] = defaultdict(list)
        for room, message_id in rest:
            by_room[self._room_ids[room]].append(message_id)
        archived = await self._sql.call(partial(archived_ids, self._engine, by_room))
        slugs = {room_id: room for room, room_id in self._room_ids.items()}
        return in_stream | {(slugs[room_id], message_id) for room_id, message_id in archived}

    async def _archive(self, prepared: _Prepared, written: asyncio.Event) -> int:
        """One batch: SQL transaction, commit, XACK, then its suspects one by one.
        Returns rows archived (0 when stop came during an outage: the batch stays pending
        for the next run). `written` is set once the transaction (and the suspects') has
        ended, however it ended."""
        try:
            return await self._archive_batch(prepared, written)
        except Stopped:
            return 0
        finally:
            written.set()

    async def _archive_batch(self, prepared: _Prepared, written: asyncio.Event) -> int:
        added = await self._write(prepared.rows, prepared.letters)
        if not prepared.suspects:
            written.set()  # the next batch may be written while this one is acknowledged
        if prepared.entries:
            self._failpoints.reach("after_commit_before_ack")
        if not prepared.suspects:
            # The next batch's transaction first: two turns of the loop (the `submit`
            # waiting for `written`, then the task it starts) send its first statement
            # before this XACK is built, so that SQL does not wait for that CPU.
            for _ in range(NEXT_FIRST_TURNS):
                await asyncio.sleep(0)
        # On Stopped here the batch is committed but not acknowledged: the next run
        # archives it again, as a no-op.
        total = await self._acknowledge(
            prepared.entries, prepared.rows, [*prepared.letters, *added], prepared.deleted
        )
        for suspect in suspects_in_order(prepared.suspects):
            total += await self._archive_suspect(suspect)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - prepared.started)
        return total

    async def _write(self, rows: list[Row], letters: list[DeadLetter]) -> list[DeadLetter]:
        """The batch's rows and dead letters in SQL, shared by room among the parallel
        writers (archiver/partitions.py), each its own transaction; returns once every
        one of them has ended. On a crash between two writers' commits, the batch is
        acknowledged by none: its entries are delivered again, and what one writer
        committed is written again as the upsert's no-op (by (room, stream id))."""
        shares = share_by_room(
            rows,
            letters,
            len(self._writers),
            room_of_row=_room_of_row,
            room_of_letter=_room_of_letter,
            room_id_of_row=_room_id_of_row,
        )
        if not shares:
            return []
        holds_changes = any(
            isinstance(row, ArchivedChange) and row.waits_for_its_message for _, row in rows
        )
        look = self._sweeps.due(holds_changes=holds_changes, now=time.monotonic())
        if len(shares) == 1:
            return await self._writers[0].write(shares[0].rows, shares[0].letters, None, look)
        open_writers = len(shares)

        async def write(writer: BatchWriter, share: Share[Row, DeadLetter]) -> list[DeadLetter]:
            nonlocal open_writers
            added = await writer.write(share.rows, share.letters, share.held, look)
            open_writers -= 1
            if open_writers:
                # Committed, while another writer's transaction of the batch is not.
                self._failpoints.reach("between_writer_commits")
            return added

        results = await asyncio.gather(
            *(write(w, share) for w, share in zip(self._writers, shares, strict=False)),
            return_exceptions=True,
        )
        added: list[DeadLetter] = []
        for result in results:  # every writer ended: the first error, if any, raises
            if isinstance(result, BaseException):
                raise result
            added += result
        return added

    async def _archive_suspect(self, entry: Delivery) -> int:
        """One suspect, alone: its delivery count raised first (so that, if it kills
        us, it goes last next time), then triaged, written and acknowledged by itself."""
        log.warning(
            "entry %s %s was delivered %d times (more than %d) without being archived: "
            "trying it alone",
            entry.room,
            entry.id,
            entry.deliveries,
            self._max_deliveries,
        )
        metrics.SUSPECTS.labels(self._labels.of(entry.room)).inc()
        self._totals.suspects += 1
        self._progress.suspects[entry.room] += 1
        await self._redis_call(partial(self._streams.count_attempt, entry))
        await self._known_rooms([entry])
        found = fate(entry, self._room_ids)
        rows: list[Row] = []
        letters: list[DeadLetter] = []
        if isinstance(found, str):
            letters.append(dead_letter(entry, found))
        else:
            rows, orphans = await self._rows([(entry, *found)])
            letters += [dead_letter(orphan, reason) for orphan, reason in orphans]
        added = await self._write(rows, letters)
        self._failpoints.reach("after_commit_before_ack")
        return await self._acknowledge([entry], rows, [*letters, *added], [])

    async def _acknowledge(
        self,
        entries: list[Delivery],
        rows: list[Row],
        letters: list[DeadLetter],
        deleted: list[Delivery],
    ) -> int:
        """XACK committed entries, then count those this XACK acknowledged (an entry
        another archiver claimed and acknowledged first is its, not ours: each entry is
        counted by exactly one archiver); returns the rows archived."""
        acks: dict[str, list[StreamId]] = defaultdict(list)
        for entry in entries:
            acks[entry.room].append(entry.id)
        if not acks:
            return 0
        taken = await self._redis_call(partial(self._streams.ack, acks))
        self._failpoints.reach("after_ack_before_trim")
        lettered = {(letter.room_slug, letter.stream_id) for letter in letters}
        archived: dict[str, list[StreamId]] = defaultdict(list)
        for entry, _ in rows:
            if lettered and (entry.room, str(entry.id)) in lettered:
                continue
            if taken and (entry.room, entry.id) in taken:
                continue
            archived[entry.room].append(entry.id)
        # Deleted entries are ours by the claim that found them (they leave the PEL then).
        gone = {(entry.room, str(entry.id)) for entry in deleted}
        counted = [
            letter
            for letter in letters
            if (letter.room_slug, letter.stream_id) in gone
            or (letter.room_slug or "", StreamId.parse(letter.stream_id)) not in taken
        ]
        missing: dict[str, int] = defaultdict(int)
        for entry in deleted:
            missing[entry.room] += 1
        for room, ids in archived.items():
            metrics.ARCHIVED.labels(self._labels.of(room)).inc(len(ids))
            if self._on_archived is not None:
                self._on_archived(room, ids)
        for letter in counted:
            metrics.DEAD_LETTERS.labels(self._labels.of(letter.room_slug or "")).inc()
            log.warning("dead letter %s %s: %s", letter.room_slug, letter.stream_id, letter.reason)
        for room, count in missing.items():
            metrics.MISSING.labels(self._labels.of(room)).inc(count)
            log.warning("%d pending entries of %s were deleted before being archived", count, room)
        counts = {room: len(ids) for room, ids in archived.items()}
        total = sum(counts.values())
        self._totals.archived += total
        self._totals.dead_lettered += len(counted)
        self._totals.missing += len(deleted)
        self._progress.add(acks, counts, missing)  # trimmed and reported by the upkeep
        return total
