"""The archiver loop: room streams -> one consumer group -> SQL, then XACK, then trim.

Per batch: triage (rows and dead letters) -> one transaction holding every row and dead
letter of the batch -> commit -> XACK -> trim below what is archived and acknowledged.
The next batch is read while the current one is written; batches are written one at a
time, in the order they were read, so a room's rows land in stream order.

Recovery: at start, and after any Redis error, this consumer re-reads its own pending
entries (id 0) before reading new ones; entries another consumer left pending longer
than `archiver_claim_idle_ms` are claimed (XAUTOCLAIM). A Redis or SQL outage is waited
out with backoff and logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys, status
from chatroom.archiver import metrics
from chatroom.archiver.batching import BatchClock, StreamEntry, split_for_retry, triage
from chatroom.archiver.consumer_name import ConsumerLease, lease_consumer_name
from chatroom.archiver.failpoints import Failpoints
from chatroom.archiver.redis_streams import Claimed, GroupStreams
from chatroom.archiver.schedules import CHECK_EVERY_S, Valve, Window, decide
from chatroom.domain.stream_ids import StreamId
from chatroom.outages import REDIS_DOWN, SQL_DOWN, SQL_REJECTED, Backoff, Outage, first_line
from chatroom.settings import ArchiveSchedule, Settings
from chatroom.store.archive_writes import (
    ArchivedMessage,
    DeadLetter,
    Duplicate,
    create_writes_engine,
    insert_dead_letters,
    statement_limit,
    write_batch,
)
from chatroom.store.counts import room_ids
from chatroom.streams.connection import connect, read_limit_s

log = logging.getLogger(__name__)

T = TypeVar("T")

ROOMS_EVERY_S = 1.0  # new rooms are found within this long
HEARTBEAT_TTL_S = 15
METRICS_EVERY_S = 5.0
TRIM_EVERY_S = 1.0  # trims run at most this often, off the write path


class _Stopped(Exception):
    """Stop was asked during an outage: leave the batch pending for the next run."""


@dataclass(slots=True)
class _Prepared:
    """A triaged batch, ready for its transaction."""

    entries: list[StreamEntry]
    rows: list[tuple[StreamEntry, ArchivedMessage]]
    letters: list[DeadLetter]
    deleted: list[StreamEntry]
    started: float


def _late_copy(entry: StreamEntry, duplicate: Duplicate) -> DeadLetter:
    first = "an earlier message" if duplicate.first is None else str(duplicate.first)
    return DeadLetter(
        redis_keys.room_stream(entry.room),
        str(entry.id),
        entry.room,
        entry.raw,
        f"duplicate client_id of {first}",
        entry.deliveries,
    )


class Archiver:
    """Moves messages from every room stream into SQL; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        redis_url: str,
        engine: AsyncEngine,
        *,
        consumer: str | None = None,
    ) -> None:
        self._settings = settings
        self._redis_url = redis_url
        self._engine = engine
        # The engine batches are written through (set by _open): see _open.
        self._writes = engine
        self._consumer = consumer or settings.archiver_consumer
        self._failpoints = Failpoints.from_env()
        self._redis_state = Outage("Redis", "waiting it out, the backlog stays in Redis", log)
        self._sql_state = Outage("SQL", "waiting it out, the backlog stays in Redis", log)
        self._backoff = {"redis": Backoff(), "sql": Backoff()}
        self.archived = 0  # rows archived by this instance
        self.dead_lettered = 0
        self.missing = 0
        # Set by _open().
        self._redis: Redis | None = None
        self._reader: Redis | None = None
        self._streams: GroupStreams | None = None
        self._lease: ConsumerLease | None = None
        self._rooms: set[str] = set()
        self._room_ids: dict[str, int] = {}
        self._max_bytes: int | None = None
        self._pending_scan: dict[str, StreamId] = {}
        # The batch being written (then acknowledged), set when its transaction ended;
        # and the batch before it, committed and being acknowledged meanwhile.
        self._inflight: asyncio.Task[int] | None = None
        self._inflight_written = asyncio.Event()
        self._acking: asyncio.Task[int] | None = None
        self._last: dict[str, float] = defaultdict(float)
        self._stop = asyncio.Event()
        self._busy_rooms: set[str] = set()
        self._dirty_rooms: set[str] = set()
        # Progress for `chatroom status`, sent to Redis once a second rather than per batch.
        self._unreported: Counter[tuple[str, int]] = Counter()
        self._unreported_missing: Counter[str] = Counter()

    @property
    def _batch(self) -> int:
        return self._settings.archiver_batch_size

    @property
    def consumer(self) -> str:
        return self._streams.consumer if self._streams else (self._consumer or "")

    # -- lifecycle ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Archive on the configured schedule until `stop` is set; the batch in hand is
        finished first."""
        self._open(stop, f"schedule {self._settings.archiver_schedule.value}")
        upkeep = asyncio.create_task(self._upkeep(), name="archiver-upkeep")
        try:
            schedule = self._settings.archiver_schedule
            if schedule is ArchiveSchedule.continuous:
                await self._continuous()
            else:
                await self._scheduled(schedule)
        finally:
            upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
            await self._close()

    async def drain(self, stop: asyncio.Event | None = None) -> int:
        """Archive the whole backlog once (own pending, stale, then new), return the rows
        archived; `stop` (optional) ends it early, after the batch in hand."""
        self._open(stop or asyncio.Event(), "draining the backlog once")
        # A drain may outlast the heartbeat's TTL: without one, another archiver could
        # take it for a gone consumer.
        keep_alive = asyncio.create_task(self._keep_alive(), name="archiver-heartbeat")
        try:
            return await self._drain()
        finally:
            keep_alive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keep_alive
            await self._close()

    def _open(self, stop: asyncio.Event, mode: str) -> None:
        self._stop = stop
        self._redis = connect(self._redis_url)
        # Reads of new entries must never be retried behind our back: a lost reply to
        # XREADGROUP > leaves entries pending; we must see the error to re-read them.
        self._reader = connect(self._redis_url, blocking=True, max_connections=4)
        self._reader.set_retry(Retry(NoBackoff(), 0))
        name = self._consumer
        if name is None:
            self._lease = lease_consumer_name(self._settings.data_dir / "archiver")
            name = self._lease.name
        self._streams = GroupStreams(self._redis, self._reader, name)
        if self._engine.dialect.name == "mysql":
            # Batches go through a small pool of our own, made for them: exact row counts
            # and bulk executions (see create_writes_engine).
            url = self._engine.url.render_as_string(hide_password=False)
            self._writes = create_writes_engine(url)
        self._rooms = set()
        self._pending_scan = {}
        log.info("archiver %s started (%s)", name, mode)

    async def _close(self) -> None:
        with contextlib.suppress(_Stopped):
            await self._finish_inflight()
        if self._streams is not None and not self._redis_state.down:
            with contextlib.suppress(*REDIS_DOWN, ResponseError):
                await self._trim_dirty()
                await self._report_progress()
                for room in sorted(self._rooms):
                    await self._streams.remove_self_if_idle(room)
                await self._streams.forget_heartbeat(sorted(self._rooms))
        for client in (self._redis, self._reader):
            if client is not None:
                with contextlib.suppress(*REDIS_DOWN):
                    await client.aclose()
        self._redis = self._reader = None
        if self._writes is not self._engine:
            await self._writes.dispose()
            self._writes = self._engine
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        log.info("archiver %s stopped: %d rows archived", self.consumer, self.archived)

    # -- schedules ------------------------------------------------------------------

    async def _continuous(self) -> None:
        settings = self._settings
        await self._refresh_rooms(force=True)
        clock = BatchClock(
            settings.archiver_batch_size, settings.archiver_flush_ms, settings.archiver_block_ms
        )
        batch: list[StreamEntry] = []
        while not self._stop.is_set():
            try:
                if not batch:
                    await self._housekeeping()
                    if self._pending_scan:
                        await self._submit(await self._read_pending())
                        continue
                    if not self._rooms:
                        await self._sleep(min(ROOMS_EVERY_S, settings.archiver_block_ms / 1000))
                        continue
                now = time.monotonic() * 1000
                got = await self._read_new(clock.room_left(), clock.block_ms(now))
            except _Stopped:
                break
            now = time.monotonic() * 1000
            batch += got
            clock.add(len(got), now)
            # Flush at N entries or T ms, and at once when SQL has nothing in flight:
            # batches grow only while the previous one is being written (no idle wait).
            writer_idle = self._inflight is None or self._inflight_written.is_set()
            if batch and (clock.due(now) or not got or writer_idle or self._stop.is_set()):
                with contextlib.suppress(_Stopped):
                    await self._submit(batch)
                batch = []
                clock.reset()
        if batch:  # read before stop was set: finish it rather than leave it pending
            with contextlib.suppress(_Stopped):
                await self._submit(batch)

    async def _scheduled(self, schedule: ArchiveSchedule) -> None:
        settings = self._settings
        window = Window.parse(settings.archiver_cron_window)
        valve = Valve(settings.archiver_valve_backlog, settings.archiver_valve_age_s)
        last_run: float | None = None
        while not self._stop.is_set():
            backlog, oldest = 0, None
            if schedule is ArchiveSchedule.cron:
                with contextlib.suppress(_Stopped, *REDIS_DOWN, ResponseError):
                    await self._refresh_rooms()
                    backlog, oldest = await self._sample_backlog()
            decision = decide(
                schedule,
                now=datetime.now(UTC),
                seconds_since_last_run=None if last_run is None else time.monotonic() - last_run,
                interval_s=settings.archiver_interval_s,
                window=window,
                valve=valve,
                backlog=backlog,
                oldest_age_s=oldest,
            )
            if decision.drain_now:
                last_run = time.monotonic()
                rows = await self._drain()
                log.info("archiver run (%s): %d rows archived", decision.reason, rows)
                continue
            await self._sleep(min(decision.wait_s, CHECK_EVERY_S, settings.archiver_interval_s))

    async def _drain(self) -> int:
        """Everything pending for us, everything stale, then new entries until the reads
        reach entries newer than this run's start (a drain ends even under load)."""
        before = self.archived
        started_ms = int(time.time() * 1000)
        try:
            await self._refresh_rooms(force=True)
            await self._claim_all()
            while not self._stop.is_set():
                if self._pending_scan:
                    await self._submit(await self._read_pending())
                    continue
                if not self._rooms:
                    break
                got = await self._read_new(self._settings.archiver_batch_size, None)
                if not got:
                    break
                await self._submit(got)
                if min(entry.id.ms for entry in got) > started_ms:
                    break
            await self._finish_inflight()
            with contextlib.suppress(*REDIS_DOWN, ResponseError):
                await self._trim_dirty()
                await self._report_progress()
        except _Stopped:
            pass
        return self.archived - before

    # -- reading --------------------------------------------------------------------

    async def _read_new(self, count: int, block_ms: int | None) -> list[StreamEntry]:
        assert self._streams is not None
        streams = self._streams
        rooms = sorted(self._rooms)
        limit = read_limit_s(block_ms)  # a read that takes longer is a hung connection
        # COUNT is per stream: share the batch among the rooms that had entries last
        # time, so that a read is about one batch and the next read overlaps its write.
        busy = len(self._busy_rooms & self._rooms) or len(self._rooms) or 1
        per_stream = max(1, -(-count // busy))

        async def read() -> list[StreamEntry]:
            return await asyncio.wait_for(
                streams.read_new(rooms, count=per_stream, block_ms=block_ms), limit
            )

        got = await self._redis_call(read)
        if got:
            metrics.BATCH_ROWS.observe(len(got))
            self._busy_rooms = {entry.room for entry in got}
        return got

    async def _read_pending(self) -> list[StreamEntry]:
        """The next chunk of this consumer's own pending entries, room by room."""
        assert self._streams is not None
        streams = self._streams
        await self._finish_inflight()  # its entries are pending too: let it ack them first
        while self._pending_scan:
            room, after = next(iter(sorted(self._pending_scan.items())))

            async def read(
                room: str = room, after: StreamId = after, count: int = self._batch
            ) -> list[StreamEntry]:
                return await streams.read_own_pending(room, after=after, count=count)

            got = await self._redis_call(read)
            if not got:
                self._pending_scan.pop(room, None)
                continue
            if room in self._pending_scan:
                self._pending_scan[room] = got[-1].id
            log.info("re-reading %d pending entries of %s", len(got), room)
            return got
        return []

    async def _claim_all(self) -> None:
        """Adopt entries a dead consumer left pending (idle past the claim time)."""
        assert self._streams is not None
        streams = self._streams
        if self._sql_state.down:
            return  # nobody can archive now; claiming would only count deliveries
        await self._finish_inflight()
        for room in sorted(self._rooms):
            start = "0-0"
            while True:

                async def claim(room: str = room, start: str = start) -> Claimed:
                    return await streams.claim_stale(
                        room,
                        min_idle_ms=self._settings.archiver_claim_idle_ms,
                        start=start,
                        count=self._batch,
                    )

                claimed = await self._redis_call(claim)
                entries: list[StreamEntry] = list(claimed.entries)
                entries += [StreamEntry(room, gone, {}, 0) for gone in claimed.deleted]
                if entries:
                    log.info("claimed %d stale pending entries of %s", len(entries), room)
                    self._failpoints.reach("after_claim")
                    await self._submit(entries)
                start = claimed.next_start
                if start in ("0-0", "0"):
                    break

    # -- writing --------------------------------------------------------------------

    async def _submit(self, entries: list[StreamEntry]) -> None:
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

    async def _finish_inflight(self) -> None:
        """Wait until every batch in hand is written and acknowledged."""
        await self._writer_free()
        acking, self._acking = self._acking, None
        if acking is not None:
            await acking

    async def _prepare(self, entries: list[StreamEntry]) -> _Prepared:
        if any(e.room not in self._room_ids for e in entries if not e.deleted):
            await self._sql_call(self._load_room_ids)
        plan = triage(entries, self._room_ids, self._settings.archiver_max_deliveries)
        rows = [
            (
                entry,
                ArchivedMessage(room_id, entry.id, event.author.id, event.client_id, event.body),
            )
            for entry, room_id, event in plan.rows
        ]
        letters = [
            DeadLetter(
                redis_keys.room_stream(entry.room),
                str(entry.id),
                entry.room,
                entry.raw,
                reason,
                entry.deliveries,
            )
            for entry, reason in plan.dead
        ]
        return _Prepared(entries, rows, letters, plan.deleted, time.perf_counter())

    async def _archive(self, prepared: _Prepared, written: asyncio.Event) -> int:
        """One batch: SQL transaction, commit, XACK. Returns rows archived (0 when stop
        came during an outage: the batch stays pending for the next run). `written` is
        set once the transaction has ended, however it ended."""
        try:
            return await self._archive_batch(prepared, written)
        except _Stopped:
            return 0
        finally:
            written.set()

    async def _archive_batch(self, prepared: _Prepared, written: asyncio.Event) -> int:
        assert self._streams is not None
        streams = self._streams
        entries, rows, letters = prepared.entries, prepared.rows, prepared.letters
        started = prepared.started
        rejected: list[DeadLetter] = []

        async def commit() -> None:
            rejected.clear()
            rejected.extend(await self._commit(rows, letters))

        await self._sql_call(commit)
        written.set()  # the next batch may be written while this one is acknowledged
        self._failpoints.reach("after_commit_before_ack")
        acks: dict[str, list[StreamId]] = defaultdict(list)
        for entry in entries:
            acks[entry.room].append(entry.id)
        rejected_ids = {(letter.room_slug, letter.stream_id) for letter in rejected}
        archived: dict[str, int] = defaultdict(int)
        for entry, _ in rows:
            if not rejected_ids or (entry.room, str(entry.id)) not in rejected_ids:
                archived[entry.room] += 1
        missing: dict[str, int] = defaultdict(int)
        for entry in prepared.deleted:
            missing[entry.room] += 1

        async def ack() -> None:
            await streams.ack(acks)

        # On _Stopped here the batch is committed but not acknowledged: the next run
        # archives it again, as a no-op.
        await self._redis_call(ack)
        self._failpoints.reach("after_ack_before_trim")
        for room, count in archived.items():
            metrics.ARCHIVED.labels(room).inc(count)
        for letter in [*letters, *rejected]:
            metrics.DEAD_LETTERS.labels(letter.room_slug or "").inc()
        for room, count in missing.items():
            metrics.MISSING.labels(room).inc(count)
            log.warning("%d pending entries of %s were deleted before being archived", count, room)
        for letter in [*letters, *rejected]:
            log.warning("dead letter %s %s: %s", letter.room_slug, letter.stream_id, letter.reason)
        total = sum(archived.values())
        self.archived += total
        self.dead_lettered += len(letters) + len(rejected)
        self.missing += len(prepared.deleted)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        self._dirty_rooms |= set(acks)  # trimmed off the write path, by _upkeep
        second = int(time.time())
        for room, count in archived.items():
            self._unreported[(room, second)] += count
        for room, count in missing.items():
            self._unreported_missing[room] += count
        return total

    async def _commit(
        self, rows: list[tuple[StreamEntry, ArchivedMessage]], letters: list[DeadLetter]
    ) -> list[DeadLetter]:
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
                late = [_late_copy(rows[duplicate.index][0], duplicate) for duplicate in found]
                await insert_dead_letters(conn, late, max_bytes=self._max_bytes)
                self._failpoints.reach("after_insert_before_commit")
            return late
        except SQL_REJECTED as exc:
            if len(rows) > 1:
                first, second = split_for_retry(rows)
                return await self._commit(first, letters) + await self._commit(second, [])
            if not rows:
                raise
            entry, _ = rows[0]
            letter = DeadLetter(
                redis_keys.room_stream(entry.room),
                str(entry.id),
                entry.room,
                entry.raw,
                f"rejected by SQL: {first_line(exc)}",
                entry.deliveries,
            )
            async with self._writes.begin() as conn:
                await write_batch(conn, [], [*letters, letter], max_bytes=self._max_bytes)
            return [letter]

    async def _trim_dirty(self) -> None:
        """Trim the rooms archived into since the last trim, below what is archived and
        acknowledged, keeping the hot window. A failed trim is harmless: the next one
        catches up."""
        assert self._streams is not None
        rooms, self._dirty_rooms = self._dirty_rooms, set()
        for room in sorted(rooms):
            try:
                await self._streams.trim(room, self._settings.archiver_hot_window)
            except (*REDIS_DOWN, ResponseError) as exc:
                log.debug("trim of %s skipped: %s", room, exc)

    async def _report_progress(self) -> None:
        assert self._streams is not None
        archived, self._unreported = self._unreported, Counter()
        missing, self._unreported_missing = self._unreported_missing, Counter()
        if not archived and not missing:
            return
        try:
            await self._streams.report_progress(archived, missing)
        except (*REDIS_DOWN, ResponseError):
            # Keep the figures for the next round.
            self._unreported.update(archived)
            self._unreported_missing.update(missing)
            raise

    # -- housekeeping ---------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """On the read path, between batches: new rooms (cheap), stale claims (rare)."""
        await self._refresh_rooms()
        now = time.monotonic()
        if now - self._last["claim"] >= self._settings.archiver_claim_idle_ms / 2000:
            self._last["claim"] = now
            await self._claim_all()

    async def _upkeep(self) -> None:
        """Off the read and write paths: trims, heartbeat, finished consumers, gauges.
        Errors skip a round; outages are the main loop's to report."""
        while True:
            now = time.monotonic()
            try:
                if now - self._last["trim"] >= TRIM_EVERY_S:
                    self._last["trim"] = now
                    await self._trim_dirty()
                    await self._report_progress()
                if now - self._last["heartbeat"] >= HEARTBEAT_TTL_S / 3:
                    self._last["heartbeat"] = now
                    await self._heartbeat_and_tidy()
                if now - self._last["metrics"] >= METRICS_EVERY_S:
                    self._last["metrics"] = now
                    await self._sample_backlog()
            except (*REDIS_DOWN, ResponseError, _Stopped) as exc:
                log.debug("upkeep round skipped: %s", exc)
            await asyncio.sleep(min(TRIM_EVERY_S, METRICS_EVERY_S))

    async def _refresh_rooms(self, *, force: bool = False) -> None:
        """Find rooms with streams (new ones without a restart) and join their group."""
        now = time.monotonic()
        if not force and now - self._last["rooms"] < ROOMS_EVERY_S:
            return
        self._last["rooms"] = now
        assert self._streams is not None
        streams = self._streams
        found = await self._redis_call(streams.rooms)
        for room in sorted(found - self._rooms):

            async def join(room: str = room) -> bool:
                return await streams.ensure_group(room)

            async def beat(room: str = room) -> None:
                # Alive in the room before the first read from it.
                await streams.heartbeat([room], HEARTBEAT_TTL_S)

            if await self._redis_call(join):
                log.info("created the archiver group of %s", room)
            await self._redis_call(beat)
            self._rooms.add(room)
            self._pending_scan.setdefault(room, StreamId(0, 0))

    async def _load_room_ids(self) -> None:
        self._room_ids = await room_ids(self._engine)

    async def _keep_alive(self) -> None:
        """The heartbeat alone, for drain() (run() has it in _upkeep)."""
        assert self._streams is not None
        while True:
            with contextlib.suppress(*REDIS_DOWN, ResponseError):
                await self._streams.heartbeat(sorted(self._rooms), HEARTBEAT_TTL_S)
            await asyncio.sleep(HEARTBEAT_TTL_S / 3)

    async def _heartbeat_and_tidy(self) -> None:
        assert self._streams is not None
        await self._streams.heartbeat(sorted(self._rooms), HEARTBEAT_TTL_S)
        idle_ms = max(60_000, 2 * self._settings.archiver_claim_idle_ms)
        for room in sorted(self._rooms):
            await self._streams.prune_rates(room, int(time.time()) - 60)
            removed = await self._streams.remove_gone_consumers(room, idle_ms=idle_ms)
            if removed:
                log.info("removed finished consumers %s from %s", removed, room)

    async def _sample_backlog(self) -> tuple[int, float | None]:
        """Backlog, pending and oldest age per room into the gauges; returns the totals."""
        assert self._redis is not None
        backlog, oldest = 0, None
        now_ms = int(time.time() * 1000)
        for room in sorted(self._rooms):
            found = await status.stream_status(self._redis, room, now_ms)
            metrics.BACKLOG.labels(room).set(found.backlog)
            metrics.PENDING.labels(room).set(found.pending)
            metrics.OLDEST_UNARCHIVED_AGE.labels(room).set(found.oldest_unarchived_age_s or 0)
            backlog += found.backlog
            if found.oldest_unarchived_age_s is not None:
                oldest = max(oldest or 0.0, found.oldest_unarchived_age_s)
        return backlog, oldest

    # -- waiting out outages --------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), max(0.0, seconds))

    async def _redis_call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a Redis operation until it succeeds; raise _Stopped if stop is asked
        while Redis is down."""
        while True:
            try:
                result = await operation()
            except REDIS_DOWN as exc:
                await self._outage("redis", self._redis_state, exc)
                # A lost reply may have delivered entries to us: re-read our pending.
                self._pending_scan = dict.fromkeys(self._rooms, StreamId(0, 0))
                continue
            except ResponseError as exc:
                if "NOGROUP" not in str(exc) and "LOADING" not in str(exc):
                    raise
                # Redis lost the group (restarted without persistence) or is loading.
                await self._outage("redis", self._redis_state, exc)
                self._rooms.clear()
                with contextlib.suppress(*REDIS_DOWN, ResponseError):
                    await self._refresh_rooms(force=True)
                continue
            self._recovered("redis", self._redis_state)
            return result

    async def _sql_call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a SQL operation until it succeeds; raise _Stopped if stop is asked while
        SQL is down."""
        while True:
            try:
                result = await operation()
            except SQL_DOWN as exc:
                await self._outage("sql", self._sql_state, exc)
                continue
            self._recovered("sql", self._sql_state)
            return result

    async def _outage(self, dependency: str, state: Outage, exc: BaseException) -> None:
        if state.failed(first_line(exc)) is not None:
            metrics.OUTAGE.labels(dependency).set(1)
        if self._stop.is_set():
            raise _Stopped
        await self._sleep(self._backoff[dependency].next_delay())
        if self._stop.is_set():
            raise _Stopped

    def _recovered(self, dependency: str, state: Outage) -> None:
        self._backoff[dependency].reset()
        if state.recovered() is not None:
            metrics.OUTAGE.labels(dependency).set(0)
