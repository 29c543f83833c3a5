"""The archiver's write pipeline: batches in the order they were read, each one
triaged, written in one SQL transaction, committed, then acknowledged.

    submit(entries)   triage: each entry becomes a row or a dead letter with its reason
                      (CPU work, done while the batch before is still in SQL)
    transaction       every row (one multi-row upsert) and every dead letter of the batch;
                      a resend SQL already holds under an earlier stream id becomes a dead
                      letter too, in the same transaction (`late_copy_reason`)
    commit, then XACK every entry of the batch (one pipeline for all rooms)

Overlap: batch k+1 is written while batch k is acknowledged, never before k committed,
so a room's rows land in stream order. When SQL rejects a row (a constraint or a value),
the batch is halved until that row is alone: it becomes a dead letter, the rest is
archived. SQL outages are waited out (`retries.Dependency`); stop asked meanwhile leaves
the batch pending for the next run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.archiver import metrics
from chatroom.archiver.batching import Delivery, split_for_retry, triage
from chatroom.archiver.failpoints import Failpoints
from chatroom.archiver.redis_streams import GroupStreams
from chatroom.archiver.retries import Dependency, Stopped
from chatroom.archiver.upkeep import Progress
from chatroom.domain.stream_ids import StreamId
from chatroom.outages import SQL_REJECTED, first_line
from chatroom.store.archive_writes import (
    ArchivedMessage,
    DeadLetter,
    Duplicate,
    insert_dead_letters,
    statement_limit,
    write_batch,
)
from chatroom.store.counts import room_ids

log = logging.getLogger(__name__)

# Runs a Redis operation until it succeeds (`GroupReader.call`).
RedisCall = Callable[[Callable[[], Awaitable[None]]], Awaitable[None]]
Row = tuple[Delivery, ArchivedMessage]


def dead_letter(entry: Delivery, reason: str) -> DeadLetter:
    """The dead letter of an entry that cannot be archived, with its raw bytes."""
    return DeadLetter(
        redis_keys.room_stream(entry.room),
        str(entry.id),
        entry.room,
        entry.raw,
        reason,
        entry.deliveries,
    )


def late_copy_reason(duplicate: Duplicate) -> str:
    first = "an earlier message" if duplicate.first is None else str(duplicate.first)
    return f"duplicate client_id of {first}"


@dataclass(slots=True)
class Totals:
    """What one archiver did, over all its runs."""

    archived: int = 0  # rows
    dead_lettered: int = 0
    missing: int = 0  # pending entries found deleted


@dataclass(slots=True)
class _Prepared:
    """A triaged batch, ready for its transaction."""

    entries: list[Delivery]
    rows: list[Row]
    letters: list[DeadLetter]
    deleted: list[Delivery]
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
        totals: Totals,
        progress: Progress,
    ) -> None:
        self._engine = engine  # where room ids are looked up
        self._writes = writes  # where batches are written (see create_writes_engine)
        self._streams = streams
        self._redis_call = redis_call
        self._sql = sql
        self._failpoints = failpoints
        self._max_deliveries = max_deliveries
        self._room_ids = room_ids  # slug -> id, reloaded when an unknown room shows up
        self._totals = totals
        self._progress = progress
        self._max_bytes: int | None = None  # of one statement, read at the first batch
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

    async def _prepare(self, entries: list[Delivery]) -> _Prepared:
        if any(e.room not in self._room_ids for e in entries if not e.deleted):
            found = await self._sql.call(partial(room_ids, self._engine))
            self._room_ids.clear()
            self._room_ids.update(found)
        plan = triage(entries, self._room_ids, self._max_deliveries)
        rows = [
            (
                entry,
                ArchivedMessage(room_id, entry.id, event.author.id, event.client_id, event.body),
            )
            for entry, room_id, event in plan.rows
        ]
        letters = [dead_letter(entry, reason) for entry, reason in plan.dead]
        return _Prepared(entries, rows, letters, plan.deleted, time.perf_counter())

    async def _archive(self, prepared: _Prepared, written: asyncio.Event) -> int:
        """One batch: SQL transaction, commit, XACK. Returns rows archived (0 when stop
        came during an outage: the batch stays pending for the next run). `written` is
        set once the transaction has ended, however it ended."""
        try:
            return await self._archive_batch(prepared, written)
        except Stopped:
            return 0
        finally:
            written.set()

    async def _archive_batch(self, prepared: _Prepared, written: asyncio.Event) -> int:
        rejected = await self._sql.call(partial(self.commit, prepared.rows, prepared.letters))
        written.set()  # the next batch may be written while this one is acknowledged
        self._failpoints.reach("after_commit_before_ack")
        acks: dict[str, list[StreamId]] = defaultdict(list)
        for entry in prepared.entries:
            acks[entry.room].append(entry.id)
        rejected_ids = {(letter.room_slug, letter.stream_id) for letter in rejected}
        archived: dict[str, int] = defaultdict(int)
        for entry, _ in prepared.rows:
            if not rejected_ids or (entry.room, str(entry.id)) not in rejected_ids:
                archived[entry.room] += 1
        missing: dict[str, int] = defaultdict(int)
        for entry in prepared.deleted:
            missing[entry.room] += 1
        # On Stopped here the batch is committed but not acknowledged: the next run
        # archives it again, as a no-op.
        await self._redis_call(partial(self._streams.ack, acks))
        self._failpoints.reach("after_ack_before_trim")
        letters = [*prepared.letters, *rejected]
        for room, count in archived.items():
            metrics.ARCHIVED.labels(room).inc(count)
        for letter in letters:
            metrics.DEAD_LETTERS.labels(letter.room_slug or "").inc()
        for room, count in missing.items():
            metrics.MISSING.labels(room).inc(count)
            log.warning("%d pending entries of %s were deleted before being archived", count, room)
        for letter in letters:
            log.warning("dead letter %s %s: %s", letter.room_slug, letter.stream_id, letter.reason)
        total = sum(archived.values())
        self._totals.archived += total
        self._totals.dead_lettered += len(letters)
        self._totals.missing += len(prepared.deleted)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - prepared.started)
        self._progress.add(acks, archived, missing)  # trimmed and reported by the upkeep
        return total

    async def commit(self, rows: list[Row], letters: list[DeadLetter]) -> list[DeadLetter]:
        """Write rows and dead letters in one transaction. A row whose (room, sender,
        client_id) SQL already holds under another stream id (a resend appended again after
        Redis forgot its client_id) is dead-lettered in the same transaction. When SQL
        rejects a row (a constraint or a value), find it by halving and dead-letter it
        alone: one bad row never holds back the others. Returns the dead letters so added."""
        if self._max_bytes is None:
            async with self._writes.connect() as conn:
                self._max_bytes = await statement_limit(conn)
        try:
            async with self._writes.begin() as conn:
                found = await write_batch(
                    conn, [m for _, m in rows], letters, max_bytes=self._max_bytes
                )
                late = [dead_letter(rows[d.index][0], late_copy_reason(d)) for d in found]
                await insert_dead_letters(conn, late, max_bytes=self._max_bytes)
                self._failpoints.reach("after_insert_before_commit")
            return late
        except SQL_REJECTED as exc:
            if len(rows) > 1:
                first, second = split_for_retry(rows)
                return await self.commit(first, letters) + await self.commit(second, [])
            if not rows:
                raise
            rejected = dead_letter(rows[0][0], f"rejected by SQL: {first_line(exc)}")
            async with self._writes.begin() as conn:
                await write_batch(conn, [], [*letters, rejected], max_bytes=self._max_bytes)
            return [rejected]
