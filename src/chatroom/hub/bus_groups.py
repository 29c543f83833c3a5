"""The fan-out's stream readers: one per group of rooms, not one for all nor one per room.

An XREAD names every stream it reads, and both the node (building and sending it) and
Redis (checking each stream) pay for each one on every call, new entries or not: over
4,000 rooms about 4.5 ms of node CPU and 1 ms of Redis's a call (docs/performance.md,
"Hub reads over many rooms"). One XREAD of every watched room would pay that for each
message of a node watching that many. So the rooms are split into `READ_GROUPS`
groups, each read by its own `StreamBus` with its own wake-up stream: a message wakes
the reader of its group only, and that call names a sixteenth of the rooms.

On a Redis Cluster the groups are the slot groups (redis_keys.py), as they must be: a
cluster refuses a command whose keys lie in different slots, and the rooms of a slot
group share one. A reader starts when the first room of its group is watched and keeps
its cursors (and so its rooms' order and continuity) exactly as a single reader does;
groups are independent, as rooms always were.
"""

from __future__ import annotations

import asyncio
import zlib

from redis.asyncio import Redis

from chatroom import redis_keys
from chatroom.hub.bus import BLOCK_MS, RoomFeed, SqlFills, StreamBus
from chatroom.redis_client import READ_HANG_S
from chatroom.streams.epochs import Standing, StreamEpochs

# As many as a cluster's slot groups: each reader holds a blocking connection.
READ_GROUPS = redis_keys.SLOT_GROUPS


def read_group(slug: str) -> int:
    """The reader of a room: its slot group on a cluster, else a hash of its slug."""
    group = redis_keys.slot_group(slug)
    return zlib.crc32(slug.encode()) % READ_GROUPS if group is None else group


class GroupedStreamBus:
    """`StreamBus`'s interface over one `StreamBus` per read group in use."""

    def __init__(
        self,
        redis: Redis,
        blocking_redis: Redis,
        node_id: str,
        feed: RoomFeed,
        epochs: StreamEpochs,
        *,
        block_ms: int = BLOCK_MS,
        hang_s: float = READ_HANG_S,
    ):
        self._args = (redis, blocking_redis, node_id, feed, epochs)
        self._block_ms, self._hang_s = block_ms, hang_s
        self._fills = SqlFills()  # one SQL outage is waited out once, not once per group
        self._buses: dict[int, StreamBus] = {}
        self._starting: dict[int, asyncio.Lock] = {}
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        self._running = False
        buses, self._buses = self._buses, {}
        await asyncio.gather(*(bus.stop() for bus in buses.values()))

    async def reader(self, group: int) -> StreamBus:
        """The stream reader of a group, started if need be."""
        bus = self._buses.get(group)
        if bus is not None:
            return bus
        async with self._starting.setdefault(group, asyncio.Lock()):
            bus = self._buses.get(group)
            if bus is None:
                bus = StreamBus(
                    *self._args,
                    block_ms=self._block_ms,
                    hang_s=self._hang_s,
                    group=group,
                    fills=self._fills,
                )
                await bus.start()
                self._buses[group] = bus
        return bus

    async def watch(self, slug: str, position: Standing) -> None:
        await (await self.reader(read_group(slug))).watch(slug, position)

    def unwatch(self, slug: str) -> None:
        bus = self._buses.get(read_group(slug))
        if bus is not None:
            bus.unwatch(slug)
