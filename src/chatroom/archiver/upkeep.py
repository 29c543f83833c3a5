"""The archiver's upkeep, off the read and write paths: trims, progress for `chatroom
status`, the heartbeat and tidying of gone consumers, and the backlog gauges.

- Trims: the rooms archived into since the last trim are trimmed at most every
  `TRIM_EVERY_S`, below what is archived and acknowledged, keeping the hot window (the
  safe-trim script of `redis_streams`). A failed trim is harmless: the next one catches up.
- Progress: rows archived per (room, second) and pending entries found deleted, counted
  by the write pipeline and sent to Redis with the trims, rather than once per batch.
- Heartbeat: this consumer's key in each room it reads, renewed every third of its TTL;
  then consumers of the group that are gone (no heartbeat, idle, nothing pending) are
  removed, and the per-second counts `chatroom status` no longer shows are pruned.
- Gauges: backlog, pending and oldest unarchived age per room, every `GAUGES_EVERY_S`.

Errors skip a round; outages are the read and write paths' to report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping

from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError, ResponseError

from chatroom import status
from chatroom.archiver import metrics
from chatroom.archiver.name_lease import NameLease
from chatroom.archiver.reading import GroupReader
from chatroom.archiver.redis_streams import GroupStreams
from chatroom.archiver.retries import pause
from chatroom.archiver.schedules import Every
from chatroom.outages import REDIS_DOWN

log = logging.getLogger(__name__)

TRIM_EVERY_S = 1.0  # trims (and progress reports) run at most this often
GAUGES_EVERY_S = 5.0


class Progress:
    """What the batches did since upkeep last reported it. It outlives the archiver's
    runs: what one run could not report (Redis down at its end), the next one does."""

    __slots__ = ("archived", "dirty_rooms", "missing", "suspects")

    def __init__(self) -> None:
        self.dirty_rooms: set[str] = set()  # archived into since their last trim
        self.archived: Counter[tuple[str, int]] = Counter()  # rows per (room, second)
        self.missing: Counter[str] = Counter()  # pending entries found deleted, per room
        self.suspects: Counter[str] = Counter()  # entries tried alone, per room

    def add(
        self, rooms: Iterable[str], archived: Mapping[str, int], missing: Mapping[str, int]
    ) -> None:
        """One batch: the rooms it acknowledged entries in, rows and missing per room."""
        self.dirty_rooms.update(rooms)
        second = int(time.time())
        for room, count in archived.items():
            self.archived[(room, second)] += count
        for room, count in missing.items():
            self.missing[room] += count


class Upkeep:
    """The periodic chores of one archiver run, for the rooms its reader joined."""

    def __init__(
        self,
        redis: Redis,
        streams: GroupStreams,
        reader: GroupReader,
        progress: Progress,
        *,
        hot_window: int,
        claim_idle_ms: int,
        labels: metrics.RoomLabels,
        name_lease: NameLease | None = None,
    ) -> None:
        self._redis = redis
        self._labels = labels
        self._name_lease = name_lease  # renewed with the heartbeat
        self.closing = asyncio.Event()  # set when the run ends: the loops stop
        self._streams = streams
        self._reader = reader
        self._progress = progress
        self._hot_window = hot_window
        # A consumer this idle (and with no heartbeat, nothing pending) is gone.
        self._gone_after_ms = max(60_000, 2 * claim_idle_ms)
        self._trims = Every(TRIM_EVERY_S)
        self._heartbeats = Every(streams.heartbeat_ttl_s / 3)
        self._gauges = Every(GAUGES_EVERY_S)

    async def run(self) -> None:
        """Every chore when due, until `closing` is set (by the end of `Archiver.run`)."""
        chores = (
            (self._trims, self.trim_and_report),
            (self._heartbeats, self._heartbeat_and_tidy),
            (self._gauges, self.sample_backlog),
        )
        while not self.closing.is_set():
            for timer, chore in chores:
                # Each on its own: Redis at maxmemory refuses the progress report, never
                # the heartbeat's renewal, which must not be skipped with it.
                if timer.due():
                    try:
                        await chore()
                    except (*REDIS_DOWN, ResponseError) as exc:
                        log.debug("upkeep chore skipped: %s", exc)
            await pause(self.closing, min(TRIM_EVERY_S, GAUGES_EVERY_S))

    async def keep_alive(self) -> None:
        """The heartbeat alone, until `closing` is set: a drain may outlast the heartbeat's
        TTL, and without one another archiver could take it for a gone consumer."""
        renew_every_s = self._streams.heartbeat_ttl_s / 3
        while not self.closing.is_set():
            with contextlib.suppress(*REDIS_DOWN, ResponseError):
                await self._heartbeat()
            await pause(self.closing, renew_every_s)

    async def end(self, task: asyncio.Task[None]) -> None:
        """End `task` (`run` or `keep_alive`) and wait for it. Cancelling alone is not
        enough: redis-py sometimes swallows a cancellation that lands while it connects,
        and the loop would go on (a heartbeat after `leave` dropped it)."""
        self.closing.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _heartbeat(self) -> None:
        """The name's lease and the per-room heartbeats, renewed."""
        if self._name_lease is not None:
            await self._name_lease.renew()
        await self._streams.heartbeat(sorted(self._reader.rooms))

    async def trim_and_report(self) -> None:
        """Trims (which free memory, also at maxmemory), then the progress report (which
        Redis at maxmemory refuses: kept for a later round)."""
        await self._trim_dirty()
        await self._report_progress()

    async def leave(self) -> None:
        """On a clean stop: last trims and progress, then leave the group in each room
        where nothing of ours is pending, and drop the heartbeats."""
        with contextlib.suppress(OutOfMemoryError):
            await self.trim_and_report()
        rooms = sorted(self._reader.rooms)
        for room in rooms:
            await self._streams.remove_self_if_idle(room)
        await self._streams.forget_heartbeat(rooms)

    async def sample_backlog(self) -> tuple[int, float | None]:
        """Backlog, pending and oldest age per room into the gauges; returns the total
        backlog and the oldest age (None: nothing unarchived)."""
        backlog, oldest = 0, None
        now_ms = int(time.time() * 1000)
        sampled = []
        for room in sorted(self._reader.rooms):
            found = await status.stream_status(self._redis, room, now_ms)
            age = found.oldest_unarchived_age_s
            sampled.append((room, found.backlog, found.pending, age or 0.0))
            backlog += found.backlog
            if age is not None:
                oldest = max(oldest or 0.0, age)
        self._labels.set_gauges(sampled)  # by public slug; private rooms as one
        return backlog, oldest

    async def _trim_dirty(self) -> None:
        progress = self._progress
        rooms, progress.dirty_rooms = progress.dirty_rooms, set()
        for room in sorted(rooms):
            try:
                await self._streams.trim(room, self._hot_window)
            except (*REDIS_DOWN, ResponseError) as exc:
                log.debug("trim of %s skipped: %s", room, exc)

    async def _report_progress(self) -> None:
        progress = self._progress
        archived, progress.archived = progress.archived, Counter()
        missing, progress.missing = progress.missing, Counter()
        suspects, progress.suspects = progress.suspects, Counter()
        if not archived and not missing and not suspects:
            return
        try:
            await self._streams.report_progress(archived, missing, suspects)
        except (*REDIS_DOWN, ResponseError):
            # Keep the figures for the next round (Redis full: once it has room again).
            progress.archived.update(archived)
            progress.missing.update(missing)
            progress.suspects.update(suspects)
            raise

    async def _heartbeat_and_tidy(self) -> None:
        rooms = sorted(self._reader.rooms)
        await self._heartbeat()
        for room in rooms:
            await self._streams.prune_rates(room, int(time.time()) - status.RATE_WINDOW_S)
            removed = await self._streams.remove_gone_consumers(room, idle_ms=self._gone_after_ms)
            if removed:
                log.info("removed finished consumers %s from %s", removed, room)
