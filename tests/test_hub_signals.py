"""Presence and typing frames between nodes over pub/sub, one channel per Redis database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from chatroom import redis_keys
from chatroom.hub.signals import RoomSignals
from chatroom.redis_client import connect
from conftest import Backend
from redis_proxy import RedisProxy
from waiting import wait_until


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


Heard = asyncio.Queue[tuple[str, str, int | None]]


@asynccontextmanager
async def _behind_a_proxy(
    backend: Backend, redis: Redis
) -> AsyncIterator[tuple[RedisProxy, RoomSignals, Heard]]:
    """A node (not started) whose subscription goes through a proxy the test can cut, with
    fast pings; what it hears; stopped at the end. A PING unanswered for 1 s is a dead
    connection: a pong a loaded machine's stall made late is not (past 0.3 s, one was)."""
    heard: Heard = asyncio.Queue()
    async with RedisProxy(backend.redis_url) as proxy:
        blocking = connect(proxy.url, blocking=True)
        node = RoomSignals(
            redis, blocking, lambda *signal: heard.put_nowait(signal), ping_every_s=0.2, hang_s=1.0
        )
        try:
            yield proxy, node, heard
        finally:
            await node.stop()
            await blocking.aclose()


async def _publish_until_heard(node: RoomSignals, heard: Heard, slug: str) -> None:
    """Publish to `slug` until the node hears it: it is subscribed (again)."""
    async with asyncio.timeout(10):
        while True:
            await node.publish(slug, "{}")
            with contextlib.suppress(TimeoutError):
                if (await asyncio.wait_for(heard.get(), 0.2))[0] == slug:
                    return


async def test_a_silent_subscription_is_found_by_ping_and_subscribed_anew(
    backend: Backend, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    async with _behind_a_proxy(backend, redis) as (proxy, node, heard):
        await node.start()
        await node.publish("lobby", "{}")
        assert (await asyncio.wait_for(heard.get(), 5))[0] == "lobby"
        # Half-open: the subscription hears nothing, and its PINGs get no answer.
        proxy.black_hole = True
        await node.publish("lost", "{}")  # published while nobody can hear it
        # Several dead connections, each found and dropped (counted, not slept for).
        await wait_until(lambda: proxy.connections >= 3, 20, what="three dead connections")
        assert heard.empty()
        proxy.black_hole = False
        # Subscribed again on a fresh connection within a PING period or so.
        await _publish_until_heard(node, heard, "music")
    lines = [r.getMessage() for r in caplog.records if r.name == "chatroom.hub.signals"]
    assert len(lines) == 2, lines  # once when it stopped, once when it works again
    assert "is unreachable" in lines[0] and "is back after" in lines[1]


async def test_access_lost_reaches_every_node(backend: Backend, redis: Redis) -> None:
    blocking = connect(backend.redis_url, blocking=True)
    lost: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    nodes = [
        RoomSignals(redis, blocking, print, lambda *signal: lost.put_nowait(signal))
        for _ in range(2)
    ]
    for node in nodes:
        await node.start()
    try:
        await nodes[0].publish_access_lost("hideout", 7)
        got = [await asyncio.wait_for(lost.get(), 5) for _ in range(2)]
        assert got == [("hideout", 7)] * 2
    finally:
        for node in nodes:
            await node.stop()
        await blocking.aclose()


async def test_signed_out_reaches_every_node(backend: Backend, redis: Redis) -> None:
    blocking = connect(backend.redis_url, blocking=True)
    signed_out: asyncio.Queue[int] = asyncio.Queue()
    lost: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    nodes = [
        RoomSignals(
            redis,
            blocking,
            print,
            lambda *signal: lost.put_nowait(signal),
            signed_out.put_nowait,
        )
        for _ in range(2)
    ]
    for node in nodes:
        await node.start()
    try:
        await nodes[1].publish_signed_out(7)
        assert [await asyncio.wait_for(signed_out.get(), 5) for _ in range(2)] == [7, 7]
        assert lost.empty()  # one kind of signal is not taken for another
    finally:
        for node in nodes:
            await node.stop()
        await blocking.aclose()


def test_user_frames_decode_apart_from_room_frames() -> None:
    from chatroom.hub.signals import RoomFrame, UserFrame, decode_signal

    assert decode_signal('{"to_user": 7, "frame": "{}"}') == UserFrame(7, "{}")
    assert decode_signal('{"to_user": null, "frame": "{}"}') == UserFrame(None, "{}")
    assert decode_signal('{"room": "lobby", "frame": "{}", "skip": null}') == RoomFrame(
        "lobby", "{}", None
    )
    assert decode_signal('{"to_user": "x", "frame": "{}"}') is None


async def test_a_node_starts_while_redis_does_not_answer_and_hears_signals_once_it_does(
    backend: Backend, redis: Redis
) -> None:
    # A node started while Redis restarts: it did exit (3) when its first subscribe
    # timed out; now it starts, and subscribes as soon as Redis answers.
    async with _behind_a_proxy(backend, redis) as (proxy, node, heard):
        proxy.black_hole = True
        async with asyncio.timeout(5):
            await node.start()
        await node.publish("lost", "{}")  # while the node cannot hear
        proxy.black_hole = False
        await _publish_until_heard(node, heard, "music")
