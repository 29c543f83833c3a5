"""The fan-out on a Redis Cluster: one stream reader per slot group, not per room.

A cluster refuses a command whose keys lie in different slots, so the single XREAD of
every watched room (hub/bus.py) becomes one XREAD per slot group (redis_keys.py): the
rooms of a group share a slot and are read together with the node's wake-up stream of
that group. A reader starts when the first room of its group is watched and keeps its
cursors (and so its rooms' order and continuity) exactly as the single reader does;
groups are independent, as rooms always were.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from chatroom import redis_keys
from chatroom.hub.bus import BLOCK_MS, RoomFeed, StreamBus
from chatroom.redis_client import READ_HANG_S
from chatroom.streams.epochs import Standing, StreamEpochs


class GroupedStreamBus:
    """`StreamBus`'s interface over one `StreamBus` per slot group in use."""

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
        self._buses: dict[int, StreamBus] = {}
        self._starting: dict[int, asyncio.Lock] = {}
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        self._running = False
        buses, self._buses = self._buses, {}
        await asyncio.gather(*(bus.stop() for bus in buses.values()))

    async def _bus(self, group: int) -> StreamBus:
        bus = self._buses.get(group)
        if bus is not None:
            return bus
        async with self._starting.setdefault(group, asyncio.Lock()):
            bus = self._buses.get(group)
            if bus is None:
                bus = StreamBus(
                    *self._args, block_ms=self._block_ms, hang_s=self._hang_s, group=group
                )
                await bus.start()
                self._buses[group] = bus
        return bus

    async def watch(self, slug: str, position: Standing) -> None:
        group = redis_keys.slot_group(slug) or 0
        await (await self._bus(group)).watch(slug, position)

    def unwatch(self, slug: str) -> None:
        bus = self._buses.get(redis_keys.slot_group(slug) or 0)
        if bus is not None:
            bus.unwatch(slug)
