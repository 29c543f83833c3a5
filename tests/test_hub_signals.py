"""Presence and typing frames between nodes over pub/sub, one channel per Redis database."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from chatroom import redis_keys
from chatroom.hub.signals import RoomSignals
from chatroom.streams.connection import connect
from conftest import Backend


async def test_a_signal_reaches_every_node_with_its_skip_user(
    backend: Backend, redis: Redis
) -> None:
    blocking = connect(backend.redis_url, blocking=True)
    heard: asyncio.Queue[tuple[str, str, int | None]] = asyncio.Queue()
    one = RoomSignals(redis, blocking, lambda *signal: heard.put_nowait(signal))
    two = RoomSignals(redis, blocking, lambda *signal: heard.put_nowait(signal))
    await one.start()
    await two.start()
    try:
        await one.publish("lobby", '{"type":"typing"}', skip_user=7)
        got = [await asyncio.wait_for(heard.get(), 5) for _ in range(2)]
        assert got == [("lobby", '{"type":"typing"}', 7)] * 2
        await redis.publish(one.channel, "not json")  # dropped, the listener goes on
        await two.publish("music", "{}")
        assert (await asyncio.wait_for(heard.get(), 5))[0] == "music"
    finally:
        await one.stop()
        await two.stop()
        await blocking.aclose()


async def test_the_channel_is_scoped_to_the_redis_database() -> None:
    # Pub/sub ignores database numbers: two deployments on databases 3 and 4 of one
    # server would hear each other's presence on a shared channel name.
    clients = [connect(f"redis://127.0.0.1:6379/{db}") for db in (3, 4)]
    try:
        three, four = (RoomSignals(client, client, print) for client in clients)
        assert three.channel == redis_keys.room_signals(3) != four.channel
    finally:
        for client in clients:
            await client.aclose()
