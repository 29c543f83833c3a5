"""The archiver's reads from the consumer group, over every room that has a stream.

Three kinds of entry, in this order of priority:
- its own pending entries (delivered to this consumer, not acknowledged), re-read room
  by room from id 0 at the start of each run and after any Redis error: a lost reply to
  `XREADGROUP >` leaves entries delivered to us that we never saw;
- stale entries, pending in another consumer for `archiver_claim_idle_ms` (it died),
  taken over with XAUTOCLAIM;
- new entries, one XREADGROUP over every room stream, its COUNT shared among the rooms
  that had entries last time (COUNT is per stream), so that one read is about one batch.

New rooms are found within `ROOMS_EVERY_S` through the set of rooms with a stream. Every
Redis call goes through `GroupReader.call`, which waits out outages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from functools import partial
from typing import TypeVar

from redis.exceptions import ResponseError

from chatroom.archiver import metrics
from chatroom.archiver.batching import Delivery
from chatroom.archiver.redis_streams import GroupStreams
from chatroom.archiver.retries import Dependency
from chatroom.archiver.schedules import Every
from chatroom.domain.stream_ids import ZERO, StreamId
from chatroom.outages import REDIS_DOWN
from chatroom.redis_client import read_limit_s

log = logging.getLogger(__name__)

T = TypeVar("T")

ROOMS_EVERY_S = 1.0  # new rooms are found within this long


def _group_lost(exc: ResponseError) -> bool:
    """Redis lost the group (restarted without persistence) or is still loading."""
    text = str(exc)
    return "NOGROUP" in text or "LOADING" in text


class GroupReader:
    """One archiver's reads: the rooms it joined, and how far it re-read its own pending
    entries in each."""

    def __init__(
        self, streams: GroupStreams, redis: Dependency, *, batch_size: int, claim_idle_ms: int
    ) -> None:
        self._streams = streams
        self._redis = redis
        self._batch_size = batch_size
        self._claim_idle_ms = claim_idle_ms
        self.rooms: set[str] = set()  # whose group this archiver joined
        # Rooms whose own pending entries are still to be re-read, and from which id.
        self._pending_scan: dict[str, StreamId] = {}
        self._busy_rooms: set[str] = set()  # the rooms the last read of new entries found
        self._rooms_timer = Every(ROOMS_EVERY_S)
        self._full_rooms: set[str] = set()  # whose group Redis was too full to create

    @property
    def rereading_own_pending(self) -> bool:
        return bool(self._pending_scan)

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a Redis operation until it succeeds; `Stopped` if stop is asked while Redis
        is down."""
        while True:
            try:
                result = await operation()
            except REDIS_DOWN as exc:
                await self._redis.failed(exc)
                # A lost reply may have delivered entries to us: re-read our pending.
                self._pending_scan = dict.fromkeys(self.rooms, ZERO)
                continue
            except ResponseError as exc:
                if not _group_lost(exc):
                    raise
                await self._redis.failed(exc)
                self.rooms.clear()
                with contextlib.suppress(*REDIS_DOWN, ResponseError):
                    await self.refresh_rooms(force=True)  # else the next attempt does
                continue
            self._redis.recovered()
            return result

    async def refresh_rooms(self, *, force: bool = False) -> None:
        """Find rooms with streams (new ones without a restart) and join their group:
        at most every ROOMS_EVERY_S, unless `force`d."""
        if force:
            self._rooms_timer.restart()
        elif not self._rooms_timer.due():
            return
        streams = self._streams
        found = await self.call(streams.rooms)
        for room in sorted(found - self.rooms):
            created = await self.call(partial(streams.ensure_group, room))
            if created is None:
                if room not in self._full_rooms:  # once per room and episode
                    log.warning(
                        "Redis is full (maxmemory): the archiver group of %s is created "
                        "once archiving the other rooms frees memory",
                        room,
                    )
                self._full_rooms.add(room)
                continue
            self._full_rooms.discard(room)
            if created:
                log.info("created the archiver group of %s", room)
            # Alive in the room before the first read from it.
            await self.call(partial(streams.heartbeat, [room]))
            self.rooms.add(room)
            self._pending_scan.setdefault(room, ZERO)

    async def server_time_ms(self) -> int:
        """Redis's clock, in milliseconds: the clock of the stream ids."""
        return await self._streams.server_time_ms()

    async def read_new(self, count: int, block_ms: int | None) -> list[Delivery]:
        """About `count` new entries over every room, waiting up to `block_ms` for them
        (None: not at all)."""
        streams = self._streams
        rooms = sorted(self.rooms)
        limit = read_limit_s(block_ms)  # a read that takes longer is a hung connection
        # COUNT is per stream: share the batch among the rooms that had entries last
        # time, so that a read is about one batch and the next read overlaps its write.
        busy = len(self._busy_rooms & self.rooms) or len(self.rooms) or 1
        per_stream = max(1, -(-count // busy))
        got = await self.call(
            lambda: asyncio.wait_for(
                streams.read_new(rooms, count=per_stream, block_ms=block_ms), limit
            )
        )
        if got:
            metrics.BATCH_ROWS.observe(len(got))
            self._busy_rooms = {entry.room for entry in got}
        return got

    async def own_pending(self) -> list[Delivery]:
        """The next batch of this consumer's own pending entries, room by room; empty
        when all are re-read."""
        while self._pending_scan:
            room, after = min(self._pending_scan.items())
            got = await self.call(
                partial(self._streams.read_own_pending, room, after=after, count=self._batch_size)
            )
            if not got:
                self._pending_scan.pop(room, None)
                continue
            if room in self._pending_scan:
                self._pending_scan[room] = got[-1].id
            log.info("re-reading %d pending entries of %s", len(got), room)
            return got
        return []

    async def stale_entries(self) -> AsyncGenerator[list[Delivery], None]:
        """Entries a dead consumer left pending (idle past the claim time), now ours, in
        batches, room by room; an entry whose data was deleted meanwhile comes with no
        fields (see `Delivery.deleted`)."""
        for room in sorted(self.rooms):
            start = "0-0"
            while True:
                claimed = await self.call(
                    partial(
                        self._streams.claim_stale,
                        room,
                        min_idle_ms=self._claim_idle_ms,
                        start=start,
                        count=self._batch_size,
                    )
                )
                entries = list(claimed.entries)
                entries += [Delivery(room, gone, {}, 0) for gone in claimed.deleted]
                if entries:
                    log.info("claimed %d stale pending entries of %s", len(entries), room)
                    yield entries
                start = claimed.next_start
                if start in ("0-0", "0"):
                    break
