"""The cross-node fan-out: each app node reads the room streams themselves.

One task per node runs XREAD BLOCK over the streams of the rooms that have subscribers
on this node, each from the last id it delivered. Order is therefore the stream's own,
and any number of nodes needs nothing else: a message appended through node 1 is read
from its stream by node 2 like any other. When the set of rooms changes while the read
is blocked, the node adds an entry to its own small wake-up stream, which is part of
every read, so the change takes effect at once.

A read that outlasts its BLOCK by `READ_HANG_S` is on a hung connection (half-open after
a failover, a NAT timeout, a paused VM): it is dropped, and the next read, on a fresh
connection, starts again from the last id delivered per room, so nothing is lost and
nothing is delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chatroom import redis_keys
from chatroom.domain.stream_ids import StreamId
from chatroom.outages import Outage, first_line
from chatroom.redis_client import READ_HANG_S
from chatroom.streams.entries import Entry, parse_entries

log = logging.getLogger(__name__)

READ_COUNT = 1000
BLOCK_MS = 10_000
RETRY_S = 0.5
WAKEUP_TTL_S = 3600

# The room's slug and its new entries, in id order.
OnEntries = Callable[[str, list[Entry]], None]


class StreamBus:
    """Reads the watched rooms' streams in id order and hands each batch to `on_entries`."""

    def __init__(
        self,
        redis: Redis,
        blocking_redis: Redis,
        node_id: str,
        on_entries: OnEntries,
        *,
        block_ms: int = BLOCK_MS,
        hang_s: float = READ_HANG_S,
    ):
        self._redis = redis
        self._blocking = blocking_redis  # XREAD BLOCK holds its connection: a client of its own
        self._block_ms = block_ms
        self._read_limit_s = block_ms / 1000 + hang_s
        self._link = Outage(
            "Redis (reading the room streams)",
            "reading again on a fresh connection; nothing is skipped",
            log,
        )
        self._wakeup_key = redis_keys.node_wakeup(node_id)
        self._wakeup_id = StreamId(0, 0)
        self._on_entries = on_entries
        self._cursors: dict[str, StreamId] = {}  # by slug: the last id delivered
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._wakeup_id = StreamId.parse(await self._wake())
        self._task = asyncio.create_task(self._run(), name="stream-bus")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._wakeup_key)

    async def watch(self, slug: str, after: StreamId) -> None:
        """Deliver the room's entries after `after` from now on (no-op if watched)."""
        if slug in self._cursors:
            return
        self._cursors[slug] = after
        await self._nudge()

    def unwatch(self, slug: str) -> None:
        # No wake-up needed: a result for an unwatched room is dropped.
        self._cursors.pop(slug, None)

    async def _wake(self) -> str:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self._wakeup_key, {"w": "1"}, maxlen=10, approximate=False)
            pipe.expire(self._wakeup_key, WAKEUP_TTL_S)
            entry_id, _ = await pipe.execute()
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def _nudge(self) -> None:
        self._changed.set()
        try:
            await self._wake()
        except (RedisError, OSError) as exc:
            # The read loop picks the room up at its next read, within BLOCK_MS.
            log.warning("could not wake the stream reader: %s", exc)

    async def _drop_connection(self) -> None:
        """Close the hung read's connection (back in the pool, idle) so that the next read
        opens a new one; the pub/sub connection, in use, is not touched."""
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(self._read_limit_s):
                await self._blocking.connection_pool.disconnect(inuse_connections=False)

    async def _run(self) -> None:
        while True:
            if not self._cursors:
                self._changed.clear()
                await self._changed.wait()
                continue
            streams: dict[str, str] = {
                redis_keys.room_stream(slug): str(after) for slug, after in self._cursors.items()
            }
            streams[self._wakeup_key] = str(self._wakeup_id)
            try:
                reply: Any = await asyncio.wait_for(
                    self._blocking.xread(
                        streams,  # type: ignore[arg-type]
                        count=READ_COUNT,
                        block=self._block_ms,
                    ),
                    self._read_limit_s,
                )
            except TimeoutError:
                self._link.failed(f"no answer within {self._read_limit_s:g} s")
                await self._drop_connection()
                continue  # at once: the cursors still hold the last ids delivered
            except (RedisError, OSError) as exc:
                self._link.failed(first_line(exc))
                await asyncio.sleep(RETRY_S)
                continue
            self._link.recovered()
            for raw_key, raw_entries in reply or []:
                key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
                entries = parse_entries(raw_entries)
                if not entries:
                    continue
                if key == self._wakeup_key:
                    self._wakeup_id = entries[-1][0]
                    continue
                slug = redis_keys.room_of_stream(key)
                cursor = self._cursors.get(slug)
                if cursor is None:
                    continue  # unwatched while the read was on its way
                # Watched anew meanwhile from a later id: only what is after that is news.
                entries = [entry for entry in entries if entry[0] > cursor]
                if not entries:
                    continue
                self._cursors[slug] = entries[-1][0]
                try:
                    self._on_entries(slug, entries)
                except Exception:  # one room's bad batch must not stop every room's fan-out
                    log.exception("fan-out of room %s failed", slug)
