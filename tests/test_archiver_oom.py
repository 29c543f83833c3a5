"""Redis at maxmemory (noeviction): an archiver started then must run, since reading,
writing SQL, XACK and XTRIM are what free the memory. On a Redis server of the test's
own (Redis 7 beside MariaDB, Valkey beside SQLite, as each backend runs), never on the
shared one: its maxmemory is set just above what it uses, then filled.

Under maxmemory, Redis 7.0 and Valkey 9 refuse (OOM) XGROUP CREATE (even of a group that
exists), XGROUP CREATECONSUMER, SET, HINCRBY, INCRBY and XADD; they allow XREADGROUP (a
new consumer included), XPENDING, XAUTOCLAIM, XCLAIM, XACK, XTRIM, XGROUP DELCONSUMER,
PEXPIRE, DEL, HDEL, TIME, and scripts calling only those; nothing queued in a MULTI.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.archiver.redis_streams import GroupStreams
from chatroom.domain.stream_ids import ZERO
from chatroom.embedded import _binary as valkey_binary
from chatroom.loopback_ports import free_port
from chatroom.redis_client import connect
from chatroom.streams.snapshots import StreamSnapshots
from conftest import Backend
from test_archiver_support import (
    Archivers,
    Traffic,
    archived_total,
    assert_exactly_once,
    create_room,
    wait_for,
)

BODY = "m" * 2000  # a few thousand of these fill the margin below maxmemory
MARGIN_BYTES = 3 * 1024 * 1024


@pytest.fixture
def own_redis(backend: Backend, tmp_path: Path) -> Iterator[str]:
    """A Redis-compatible server of this test's own, without persistence: Redis 7 (the
    machine's) beside MariaDB, the packaged Valkey beside SQLite."""
    binary = "/usr/bin/redis-server" if backend.name == "mariadb" else str(valkey_binary())
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path), "--maxmemory-policy", "noeviction"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert time.monotonic() < deadline, f"{binary} did not start"
        time.sleep(0.02)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.kill()
        server.wait()


@pytest.fixture
async def full_redis(own_redis: str) -> AsyncIterator[Redis]:
    client = connect(own_redis)
    try:
        yield client
    finally:
        await client.aclose()


async def _fill(redis: Redis, traffic: Traffic, room: str) -> int:
    """Send to `room` until Redis refuses for want of memory; how many were taken."""
    memory: Any = await redis.info("memory")
    await redis.config_set("maxmemory", str(int(memory["used_memory"]) + MARGIN_BYTES))
    taken = 0
    while True:
        try:
            await traffic.send(room, 1, body=BODY)
        except OutOfMemoryError:
            return taken
        taken += 1


async def test_an_archiver_started_at_maxmemory_drains_the_backlog_and_sends_work_again(
    own_redis: str,
    full_redis: Redis,
    engine: AsyncEngine,
    archivers: Archivers,
) -> None:
    redis = full_redis
    await create_room(engine, "quiet")
    traffic = Traffic(redis)
    # An archiver ran before: the lobby's group and this consumer exist.
    await traffic.send("lobby", 5)
    assert await archivers.new(redis_url=own_redis, consumer="a1").drain() == 5
    # A room whose stream exists but whose group does not (no archiver read it yet).
    await traffic.send("quiet", 3)
    # Filled until a send is refused for want of memory.
    assert await _fill(redis, traffic, "lobby") > 500

    archiver = archivers.new(redis_url=own_redis, consumer="a1", archiver_batch_size=200)
    running = archivers.start(archiver)
    # Before: XGROUP CREATE (the quiet room) or the heartbeat's SET was refused with OOM,
    # and the archiver died at once; the backlog that would free the memory stayed.
    await wait_for(lambda: _all_archived(engine, traffic), timeout=60, what="the backlog")
    assert not running.task.done()
    # Trimmed below what is archived: memory is free again, and sends work.
    await wait_for(lambda: _sends_work(traffic), timeout=30, what="sends taken again")
    await traffic.send("quiet", 2)
    await wait_for(lambda: _all_archived(engine, traffic), timeout=30, what="the last ones")
    await running.stop()
    await assert_exactly_once(redis, engine, traffic)
    await traffic.close()


async def _all_archived(engine: AsyncEngine, traffic: Traffic) -> bool:
    return await archived_total(engine) == traffic.count()


async def _sends_work(traffic: Traffic) -> bool:
    try:
        await traffic.send("lobby", 1)
    except OutOfMemoryError:
        return False
    return True


async def test_heartbeats_and_groups_under_maxmemory(own_redis: str, full_redis: Redis) -> None:
    redis = full_redis
    traffic = Traffic(redis)
    streams = GroupStreams(redis, redis, "a1")
    await traffic.send("lobby", 3)
    assert await streams.ensure_group("lobby") is True
    await streams.heartbeat(["lobby"])
    alive = redis_keys.archiver_heartbeat("lobby", "a1")
    await traffic.send("other", 1)
    await _fill(redis, traffic, "lobby")
    # The heartbeat that exists is renewed (PEXPIRE), a new one cannot be made (SET).
    await redis.pexpire(alive, 1000)
    await streams.heartbeat(["lobby", "other"])
    assert await redis.pttl(alive) > 5000
    assert not await redis.exists(redis_keys.archiver_heartbeat("other", "a1"))
    # XGROUP CREATE is refused even for a group that exists: told apart.
    assert await streams.ensure_group("lobby") is False
    assert await streams.ensure_group("other") is None
    # A consumer holding entries, without a heartbeat and idle, is never removed (its
    # heartbeat may be what Redis could not write).
    await redis.xreadgroup("archiver", "holder", {redis_keys.room_stream("lobby"): ">"}, count=2)
    await asyncio.sleep(0.05)
    assert await streams.remove_gone_consumers("lobby", idle_ms=1) == []
    await traffic.close()


async def test_history_snapshots_are_read_while_redis_is_full(full_redis: Redis) -> None:
    redis = full_redis
    traffic = Traffic(redis)
    first_two = await traffic.send("lobby", 2)
    taken = await _fill(redis, traffic, "lobby")
    snapshots = StreamSnapshots(redis)
    # Before: one MULTI/EXEC, and Redis at maxmemory refuses every command queued in a
    # MULTI, reads included: history pages answered 503 while sends were refused.
    newest = await snapshots.read_range("lobby", after=None, before=None, count=5)
    ids = [entry_id for entry_id, _ in newest.entries]
    assert len(ids) == 5 and ids == sorted(ids, reverse=True)
    assert newest.horizon == ids[0] and not newest.exhausted
    oldest = await snapshots.read_range("lobby", after=ZERO, before=None, count=2)
    assert [entry_id for entry_id, _ in oldest.entries] == first_two
    assert newest.first_id == first_two[0]
    assert oldest.entries[0][1][b"event"].startswith(b"{")
    older = await snapshots.read_range("lobby", after=None, before=ids[-1], count=taken + 10)
    assert len(older.entries) == taken + 2 - 5 and older.exhausted
    missing = await snapshots.read_range("nowhere", after=None, before=None, count=5)
    assert missing.entries == [] and missing.first_id is None and missing.exhausted
