"""The archiver's Redis side on real Redis (both backends): removing gone consumers is
one atomic check-and-delete, and an archiver keeps its heartbeat while it drains."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.archiver import redis_streams
from chatroom.archiver.redis_streams import GroupStreams
from chatroom.domain.stream_ids import StreamId
from chatroom.store.counts import room_ids
from chatroom.store.tables import messages
from conftest import Backend
from test_archiver_support import ALICE, Archivers, Traffic, wait_for

STREAM = redis_keys.room_stream("lobby")


async def _consumers(redis: Redis) -> set[str]:
    found: Any = await redis.xinfo_consumers(STREAM, "archiver")
    return {info["name"].decode() for info in found}


async def _group_with(redis: Redis, traffic: Traffic, readers: dict[str, int]) -> None:
    """The lobby's group, with each named consumer having read that many new entries."""
    await traffic.send("lobby", sum(readers.values()) or 1)
    await redis.xgroup_create(STREAM, "archiver", id="0")
    for name, count in readers.items():
        if count:
            await redis.xreadgroup("archiver", name, {STREAM: ">"}, count=count)
        else:
            await redis.xgroup_createconsumer(STREAM, "archiver", name)


async def test_a_consumer_holding_pending_entries_is_never_removed(
    backend: Backend, redis: Redis
) -> None:
    traffic = Traffic(redis)
    await _group_with(redis, traffic, {"reader": 2, "finished": 0})
    tidy = GroupStreams(redis, redis, "tidy")
    # Called directly, past any pre-filter: the script itself refuses.
    assert not await tidy.remove_consumer_if_gone("lobby", "reader", idle_ms=0)
    assert await tidy.remove_consumer_if_gone("lobby", "finished", idle_ms=0)
    assert await _consumers(redis) == {"reader"}
    assert await tidy.remove_gone_consumers("lobby", idle_ms=0) == []
    await traffic.close()


async def test_a_consumer_with_a_live_heartbeat_or_recent_activity_is_never_removed(
    backend: Backend, redis: Redis
) -> None:
    traffic = Traffic(redis)
    await _group_with(redis, traffic, {"alive": 0, "recent": 0, "gone": 0})
    await GroupStreams(redis, redis, "alive").heartbeat(["lobby"])
    tidy = GroupStreams(redis, redis, "tidy")
    assert not await tidy.remove_consumer_if_gone("lobby", "alive", idle_ms=0)
    assert not await tidy.remove_consumer_if_gone("lobby", "recent", idle_ms=60_000)
    assert not await tidy.remove_consumer_if_gone("lobby", "nobody", idle_ms=0)
    assert await tidy.remove_gone_consumers("lobby", idle_ms=0) == ["gone", "recent"]
    assert await _consumers(redis) == {"alive"}
    # The heartbeat is per room (one Cluster slot with the stream); once it lapses, a
    # consumer holding nothing goes too.
    await redis.delete(redis_keys.archiver_heartbeat("lobby", "alive"))
    assert await tidy.remove_gone_consumers("lobby", idle_ms=0) == ["alive"]
    await traffic.close()


async def test_a_drain_held_up_by_sql_keeps_its_heartbeat_alive(
    redis: Redis, engine: AsyncEngine, archivers: Archivers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Refreshed every 0.5 s: a refresh up to a second late on a loaded machine is no lapse
    # (with 0.6 s, refreshed every 0.2 s, one 0.4 s late was).
    monkeypatch.setattr(redis_streams, "HEARTBEAT_TTL_S", 1.5)
    traffic = Traffic(redis)
    [first] = await traffic.send("lobby", 1)
    room_id = (await room_ids(engine))["lobby"]
    alive = redis_keys.archiver_heartbeat("lobby", "once")
    archiver = archivers.new(consumer="once")
    async with engine.connect() as blocker:
        # An uncommitted row with the same stream id holds the drain's INSERT (a row lock
        # on MariaDB, the write lock on SQLite) for several heartbeat TTLs.
        await blocker.execute(
            sa.insert(messages).values(
                room_id=room_id,
                stream_ms=first.ms,
                stream_seq=first.seq,
                user_id=ALICE.id,
                client_id="blocker",
                body="",
                created_at=datetime(2026, 1, 1),
            )
        )
        draining = archivers.start(archiver, once=True)
        await wait_for(lambda: _exists(redis, alive), what="the first heartbeat")
        held_until = time.monotonic() + 3.0  # two TTLs
        while time.monotonic() < held_until:
            assert await redis.exists(alive), "the heartbeat lapsed while the drain waited"
            assert not draining.task.done()
            await asyncio.sleep(0.02)
        await blocker.rollback()
    assert await draining.task == 1
    # Stopped cleanly: no heartbeat left behind, and out of the group.
    assert not await redis.exists(alive)
    assert await _consumers(redis) == set()
    await traffic.close()


async def _exists(redis: Redis, key: str) -> bool:
    return bool(await redis.exists(key))


async def test_an_ack_says_which_entries_another_acknowledged_first(
    backend: Backend, redis: Redis
) -> None:
    traffic = Traffic(redis)
    await _group_with(redis, traffic, {"slow": 3})
    entries: Any = await redis.xrange(STREAM)
    ids = [StreamId.parse(raw_id) for raw_id, _ in entries]
    # The slow consumer's first entry was claimed and acknowledged by another meanwhile:
    # it is that one's, and the slow one counts only the two it acknowledged itself.
    await redis.xclaim(STREAM, "archiver", "quick", 0, [str(ids[0])])
    quick = GroupStreams(redis, redis, "quick")
    assert await quick.ack({"lobby": ids[:1]}) == set()
    slow = GroupStreams(redis, redis, "slow")
    assert await slow.ack({"lobby": ids}) == {("lobby", ids[0])}
    await traffic.close()
