"""The per-node reader of the room streams, on real Redis."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from chatroom import redis_keys
from chatroom.domain.stream_ids import ZERO, StreamId
from chatroom.hub.bus import BLOCK_MS, StreamBus
from chatroom.streams.connection import connect
from chatroom.streams.snapshots import Entry
from conftest import Backend


class Received:
    def __init__(self) -> None:
        self.batches: list[tuple[str, list[Entry]]] = []
        self.changed = asyncio.Event()

    def __call__(self, room: str, entries: list[Entry]) -> None:
        self.batches.append((room, entries))
        self.changed.set()

    def ids(self, room: str) -> list[StreamId]:
        return [i for r, entries in self.batches if r == room for i, _ in entries]

    async def wait_for(self, room: str, count: int, timeout: float = 5.0) -> list[StreamId]:
        async with asyncio.timeout(timeout):
            while len(self.ids(room)) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.ids(room)


async def _add(redis: Redis, room: str, count: int) -> list[StreamId]:
    key = redis_keys.room_stream(room)
    return [StreamId.parse(await redis.xadd(key, {"event": b"{}"})) for _ in range(count)]


async def test_rooms_are_read_in_id_order_and_a_new_room_is_picked_up_at_once(
    backend: Backend, redis: Redis
) -> None:
    blocking = connect(backend.redis_url, blocking=True)
    received = Received()
    bus = StreamBus(redis, blocking, "test-node", received)
    await bus.start()
    try:
        await bus.watch("lobby", ZERO)
        lobby = await _add(redis, "lobby", 5)
        assert await received.wait_for("lobby", 5) == lobby
        await asyncio.sleep(0.1)  # the reader is now blocked in XREAD
        started = time.monotonic()
        ids = await _add(redis, "music", 2)
        await bus.watch("music", ids[0])  # from after the first entry
        assert await received.wait_for("music", 1) == ids[1:]
        assert time.monotonic() - started < BLOCK_MS / 1000 / 2  # woken, not timed out
        bus.unwatch("lobby")
        await _add(redis, "lobby", 3)
        more = await _add(redis, "music", 1)
        assert await received.wait_for("music", 2) == ids[1:] + more
        assert received.ids("lobby") == lobby  # unwatched: nothing more
    finally:
        await bus.stop()
        await blocking.aclose()
    assert not await redis.exists(redis_keys.node_wakeup("test-node"))
