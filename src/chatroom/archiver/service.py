"""The archiver: room streams -> one consumer group -> SQL, then XACK, then trim.

`Archiver` opens one run (`run` on the configured schedule, or `drain` once), builds its
parts on the run's connections, and drives them:

    reading.GroupReader      own pending entries first, then stale claims, then new ones
    pipeline.WritePipeline   triage -> one transaction per batch -> commit -> XACK
    upkeep.Upkeep            trims, progress, heartbeat and tidying, gauges (a task)

The three schedules are the loops below: `continuous` block-reads and flushes at N
entries or T milliseconds (at once when SQL is idle); `interval` and `cron` drain the
whole backlog when `schedules.decide` says so. A drain ends once a read returns only
entries newer than its start (by Redis's clock, which makes the ids: this host's may be
skewed), so it ends even under constant traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.archiver import redis_streams
from chatroom.archiver.batching import BatchClock, Delivery
from chatroom.archiver.consumer_name import ConsumerLease
from chatroom.archiver.failpoints import Failpoints
from chatroom.archiver.metrics import RoomLabels
from chatroom.archiver.name_lease import NameLease, take_consumer_name
from chatroom.archiver.pipeline import ArchivedHook, Totals, WritePipeline
from chatroom.archiver.reading import ROOMS_EVERY_S, GroupReader
from chatroom.archiver.redis_streams import GroupStreams
from chatroom.archiver.retries import Dependency, Stopped, pause
from chatroom.archiver.schedules import CHECK_EVERY_S, Every, Valve, decide
from chatroom.archiver.upkeep import Progress, Upkeep
from chatroom.outages import REDIS_DOWN, SQL_DOWN
from chatroom.redis_client import connect
from chatroom.redis_cluster import is_cluster_url
from chatroom.settings import ArchiveSchedule, Settings
from chatroom.store.archive_writes import create_writes_engine

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Run:
    """One run's connections and the parts built on them."""

    redis: Redis
    blocking: Redis  # reads new entries with BLOCK; never retried behind our back
    writes: AsyncEngine
    lease: ConsumerLease | None  # the slot's lock, and the name's lease in Redis
    name_lease: NameLease | None
    reader: GroupReader
    pipeline: WritePipeline
    upkeep: Upkeep

    @property
    def name_lost(self) -> bool:
        """Another process took this run's consumer name: end the run, start another."""
        return self.name_lease is not None and self.name_lease.lost


class Archiver:
    """Moves messages from every room stream into SQL; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        redis_url: str,
        engine: AsyncEngine,
        *,
        consumer: str | None = None,
        failpoints: Failpoints | None = None,
        on_archived: ArchivedHook | None = None,
    ) -> None:
        self._settings = settings
        self._redis_url = redis_url
        self._engine = engine
        self._consumer = consumer or settings.archiver_consumer  # None: leased per run
        self._name = self._consumer or ""
        # Crash points for the fault tests; only `chatroom archive` and `serve` set them.
        self._failpoints = failpoints or Failpoints()
        # Told which entries this archiver archived, after each acknowledgement.
        self._on_archived = on_archived
        self._stop = asyncio.Event()
        # What outlives a run: outages under way, counts, room ids, unreported progress.
        self._redis = Dependency("redis", "Redis", down=REDIS_DOWN)
        self._sql = Dependency("sql", "SQL", down=SQL_DOWN)
        self._totals = Totals()
        self._room_ids: dict[str, int] = {}
        self._labels = RoomLabels()  # the `room` label: public slugs only
        self._progress = Progress()
        self._claims = Every(settings.archiver_claim_idle_ms / 2000)

    @property
    def consumer(self) -> str:
        """The consumer name in the group, of the current or the last run."""
        return self._name

    @property
    def archived(self) -> int:
        """Rows archived by this archiver, over all its runs."""
        return self._totals.archived

    @property
    def dead_lettered(self) -> int:
        return self._totals.dead_lettered

    @property
    def missing(self) -> int:
        return self._totals.missing

    @property
    def suspects(self) -> int:
        """Entries tried alone after more than `archiver_max_deliveries` deliveries."""
        return self._totals.suspects

    # -- lifecycle ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Archive on the configured schedule until `stop` is set; the batch in hand is
        finished first."""
        schedule = self._settings.archiver_schedule
        while not stop.is_set():
            try:
                run = await self._open(stop, f"schedule {schedule.value}")
            except Stopped:
                return
            upkeep = asyncio.create_task(run.upkeep.run(), name="archiver-upkeep")
            try:
                if schedule is ArchiveSchedule.continuous:
                    await self._continuous(run)
                else:
                    await self._scheduled(run, schedule)
            finally:
                await run.upkeep.end(upkeep)
                await self._close(run)
            if not run.name_lost:
                return

    async def drain(self, stop: asyncio.Event | None = None) -> int:
        """Archive the whole backlog once (own pending, stale, then new), return the rows
        archived; `stop` (optional) ends it early, after the batch in hand."""
        stop = stop or asyncio.Event()
        rows = 0
        while not stop.is_set():
            try:
                run = await self._open(stop, "draining the backlog once")
            except Stopped:
                break
            keep_alive = asyncio.create_task(run.upkeep.keep_alive(), name="archiver-heartbeat")
            try:
                rows += await self._drain(run)
            finally:
                await run.upkeep.end(keep_alive)
                await self._close(run)
            if not run.name_lost:
                break
        return rows

    async def _open(self, stop: asyncio.Event, mode: str) -> _Run:
        settings = self._settings
        self._stop = stop
        self._redis.stop = self._sql.stop = stop  # an outage's wait ends on it too
        redis = connect(self._redis_url)
        # Reads of new entries must never be retried behind our back: a lost reply to
        # XREADGROUP > leaves entries pending; we must see the error to re-read them.
        # On a cluster: up to one read per slot group at once (archiver/redis_streams.py).
        reads = redis_keys.SLOT_GROUPS + 4 if is_cluster_url(self._redis_url) else 4
        blocking = connect(self._redis_url, blocking=True, max_connections=reads)
        blocking.set_retry(Retry(NoBackoff(), 0))
        lease, name_lease, name = None, None, self._consumer
        if name is None:
            try:
                folder = settings.data_dir / "archiver"
                ttl_s = redis_streams.HEARTBEAT_TTL_S
                lease, name_lease = await take_consumer_name(redis, folder, ttl_s, self._redis.call)
            except BaseException:
                for client in (redis, blocking):
                    await client.aclose()
                raise
            name = lease.name
        self._name = name
        streams = GroupStreams(redis, blocking, name)
        writes, writers = self._engine, 1
        if self._engine.dialect.name == "mysql":
            # Batches go through a small pool of our own, made for them: exact row counts
            # and bulk executions (see create_writes_engine), a connection per writer.
            # SQLite stays at one writer: it takes one write transaction at a time (a
            # lock on the whole file), so a second would only wait for the first.
            writers = settings.archiver_sql_writers
            writes = create_writes_engine(
                self._engine.url.render_as_string(hide_password=False),
                pool_size=max(2, writers),
            )
        reader = GroupReader(
            streams,
            self._redis,
            batch_size=settings.archiver_batch_size,
            claim_idle_ms=settings.archiver_claim_idle_ms,
        )
        pipeline = WritePipeline(
            engine=self._engine,
            writes=writes,
            streams=streams,
            redis_call=reader.call,
            sql=self._sql,
            failpoints=self._failpoints,
            max_deliveries=settings.archiver_max_deliveries,
            room_ids=self._room_ids,
            labels=self._labels,
            totals=self._totals,
            progress=self._progress,
            on_archived=self._on_archived,
            writers=writers,
        )
        upkeep = Upkeep(
            redis,
            streams,
            reader,
            self._progress,
            hot_window=settings.archiver_hot_window,
            claim_idle_ms=settings.archiver_claim_idle_ms,
            labels=self._labels,
            name_lease=name_lease,
        )
        log.info("archiver %s started (%s)", name, mode)
        return _Run(redis, blocking, writes, lease, name_lease, reader, pipeline, upkeep)

    async def _close(self, run: _Run) -> None:
        with contextlib.suppress(Stopped):
            await run.pipeline.finish()
        await run.pipeline.sweep_held(finishing=True)  # what the last batches may have left
        await run.pipeline.close()
        if not self._redis.down and not run.name_lost:
            with contextlib.suppress(*REDIS_DOWN, ResponseError):
                await run.upkeep.leave()
                if run.name_lease is not None:
                    await run.name_lease.release()
        for client in (run.redis, run.blocking):
            with contextlib.suppress(*REDIS_DOWN):
                await client.aclose()
        if run.writes is not self._engine:
            await run.writes.dispose()
        if run.lease is not None:
            run.lease.release()
        log.info("archiver %s stopped: %d rows archived", self.consumer, self.archived)

    # -- the schedules --------------------------------------------------------------

    async def _continuous(self, run: _Run) -> None:
        settings, reader, pipeline = self._settings, run.reader, run.pipeline
        await reader.refresh_rooms(force=True)
        clock = BatchClock(
            settings.archiver_batch_size, settings.archiver_flush_ms, settings.archiver_block_ms
        )
        idle_block_s = settings.archiver_block_ms / 1000
        batch: list[Delivery] = []
        while not self._stop.is_set() and not run.name_lost:
            try:
                if not batch:
                    await self._between_batches(run)
                    if reader.rereading_own_pending:
                        await self._submit_own_pending(run)
                        continue
                    if not reader.rooms:
                        await pause(self._stop, min(ROOMS_EVERY_S, idle_block_s))
                        continue
                now = time.monotonic() * 1000
                got = await reader.read_new(clock.room_left(), clock.block_ms(now))
            except Stopped:
                break
            now = time.monotonic() * 1000
            batch += got
            clock.add(len(got), now)
            # Flush at N entries or T ms, and at once when SQL has nothing in flight:
            # batches grow only while the previous one is being written (no idle wait).
            if batch and (clock.due(now) or not got or pipeline.writer_idle or self._stop.is_set()):
                with contextlib.suppress(Stopped):
                    await pipeline.submit(batch)
                batch = []
                clock.reset()
        if batch:  # read before stop was set: finish it rather than leave it pending
            with contextlib.suppress(Stopped):
                await pipeline.submit(batch)

    async def _scheduled(self, run: _Run, schedule: ArchiveSchedule) -> None:
        settings = self._settings
        valve = Valve(settings.archiver_valve_backlog, settings.archiver_valve_age_s)
        last_run: float | None = None
        while not self._stop.is_set() and not run.name_lost:
            backlog, oldest = 0, None
            if schedule is ArchiveSchedule.cron:
                with contextlib.suppress(Stopped, *REDIS_DOWN, ResponseError):
                    await run.reader.refresh_rooms()
                    backlog, oldest = await run.upkeep.sample_backlog()
            decision = decide(
                schedule,
                now=datetime.now(UTC),
                seconds_since_last_run=None if last_run is None else time.monotonic() - last_run,
                interval_s=settings.archiver_interval_s,
                window=settings.archiver_cron_window,
                valve=valve,
                backlog=backlog,
                oldest_age_s=oldest,
            )
            if decision.drain_now:
                last_run = time.monotonic()
                rows = await self._drain(run)
                log.info("archiver run (%s): %d rows archived", decision.reason, rows)
                continue
            wait_s = min(decision.wait_s, CHECK_EVERY_S, settings.archiver_interval_s)
            await pause(self._stop, wait_s)

    async def _drain(self, run: _Run) -> int:
        """Everything pending for us, everything stale, then new entries until the reads
        reach entries newer than this run's start (a drain ends even under load)."""
        reader, pipeline = run.reader, run.pipeline
        before = self.archived
        try:
            # Redis's clock, which made the stream ids: this host's may be skewed.
            started_ms = await reader.call(reader.server_time_ms)
            await reader.refresh_rooms(force=True)
            await self._claim_stale(run)
            while not self._stop.is_set() and not run.name_lost:
                if reader.rereading_own_pending:
                    await self._submit_own_pending(run)
                    continue
                if not reader.rooms:
                    break
                got = await reader.read_new(self._settings.archiver_batch_size, None)
                if not got:
                    break
                await pipeline.submit(got)
                if min(entry.id.ms for entry in got) > started_ms:
                    break
            await pipeline.finish()
            await pipeline.sweep_held(finishing=True)  # the held changes it may have left
            with contextlib.suppress(*REDIS_DOWN, ResponseError):
                await run.upkeep.trim_and_report()
        except Stopped:
            pass
        return self.archived - before

    # -- between batches ------------------------------------------------------------

    async def _between_batches(self, run: _Run) -> None:
        """On the read path, when no batch is being gathered: new rooms (cheap), stale
        claims (every half claim time), held changes to apply (at most every second, and
        only if some may wait: archiver/held_sweeps.py)."""
        await run.reader.refresh_rooms()
        if self._claims.due():
            await self._claim_stale(run)
        await run.pipeline.sweep_held()

    async def _submit_own_pending(self, run: _Run) -> None:
        await run.pipeline.finish()  # its entries are pending too: let it ack them first
        await run.pipeline.submit(await run.reader.own_pending())

    async def _claim_stale(self, run: _Run) -> None:
        """Adopt the entries a dead consumer left pending (idle past the claim time)."""
        if self._sql.down:
            return  # nobody can archive now; claiming would only count deliveries
        await run.pipeline.finish()
        async with contextlib.aclosing(run.reader.stale_entries()) as claims:
            async for entries in claims:
                self._failpoints.reach("after_claim")
                await run.pipeline.submit(entries)
