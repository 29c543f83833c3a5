"""Two live archivers never share a consumer name, even on machines with the same host
name and a copy of one data folder (a cloned VM, containers with host networking): the
name's lease in Redis settles it (both backends)."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO, Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.archiver import consumer_name, redis_streams
from chatroom.archiver.consumer_name import lease_consumer_name, machine_mark
from chatroom.archiver.name_lease import NameLease, Taken
from conftest import Backend
from test_archiver_support import Archivers, Traffic, archived_total, assert_exactly_once, wait_for


class OtherKernel:
    """The file locks of another machine: its lock table knows nothing of ours."""

    def __init__(self) -> None:
        self.held: set[str] = set()

    def flock(self, handle: IO[str], operation: int) -> None:
        name = str(handle.name)
        if operation & fcntl.LOCK_UN:
            self.held.discard(name)
        elif name in self.held:
            raise BlockingIOError
        else:
            self.held.add(name)


async def test_a_clone_with_the_same_host_name_and_data_folder_gets_another_name(
    redis: Redis,
    engine: AsyncEngine,
    archivers: Archivers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    traffic = Traffic(redis)
    await traffic.send("lobby", 100)
    first = archivers.new(archiver_batch_size=20)
    running = [archivers.start(first)]
    await wait_for(lambda: _has_name(first), what="the first archiver's name")
    # The clone: same host name, the same data folder (copied, instance id included),
    # but another kernel: its own file locks, its own boot.
    clone_kernel = OtherKernel()
    monkeypatch.setattr(consumer_name.fcntl, "flock", clone_kernel.flock)
    monkeypatch.setattr(consumer_name, "machine_mark", lambda: "a-cloned-machine")
    second = archivers.new(archiver_batch_size=20)
    running.append(archivers.start(second))
    await wait_for(lambda: _has_name(second), what="the clone's name")
    monkeypatch.undo()
    # Before: both were `<host>-<folder>-0`, and one could delete the other's pending.
    assert second.consumer != first.consumer
    assert second.consumer == first.consumer[: -len("0")] + "1"
    await traffic.send("lobby", 100)
    await wait_for(lambda: _has(engine, 200), what="both archiving")
    for each in running:
        await each.stop()
    await assert_exactly_once(redis, engine, traffic)
    await traffic.close()


async def _has_name(archiver: Any) -> bool:
    return bool(archiver.consumer)


async def _has(engine: AsyncEngine, count: int) -> bool:
    return await archived_total(engine) >= count


async def test_a_restart_on_the_same_machine_takes_its_dead_predecessors_name_at_once(
    backend: Backend, redis: Redis, tmp_path: Path
) -> None:
    slot = lease_consumer_name(tmp_path)
    key = redis_keys.archiver_name_lease(slot.name)
    # Its predecessor (same machine and folder, another pid) died holding the lease.
    machine, folder, _ = slot.token.split("|")
    await redis.set(key, f"{machine}|{folder}|1", px=15_000)
    lease = NameLease(redis, slot.name, slot.token, ttl_s=15)
    assert await lease.take() is Taken.YES
    assert await redis.get(key) == slot.token.encode()
    # A live holder on another machine keeps it.
    await redis.set(key, f"another-machine|{folder}|1", px=15_000)
    assert await NameLease(redis, slot.name, slot.token, ttl_s=15).take() is Taken.ELSEWHERE
    assert machine == machine_mark()
    slot.release()


async def test_a_lease_lost_to_another_process_is_given_up_for_a_new_name(
    redis: Redis, engine: AsyncEngine, archivers: Archivers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_streams, "HEARTBEAT_TTL_S", 0.6)  # renewed every 0.2 s
    traffic = Traffic(redis)
    archiver = archivers.new()
    running = archivers.start(archiver)
    await traffic.send("lobby", 10)
    await wait_for(lambda: _has(engine, 10), what="archiving")
    old = archiver.consumer
    # Its lease lapsed (Redis unreachable past the TTL) and a clone took the name.
    await redis.set(redis_keys.archiver_name_lease(old), "a-cloned-machine|x|1")
    await wait_for(lambda: _renamed(archiver, old), what="a new name")
    assert archiver.consumer.endswith("-1")
    await traffic.send("lobby", 10)
    await wait_for(lambda: _has(engine, 20), what="archiving under the new name")
    await running.stop()
    # The clone's heartbeat and lease were left alone.
    assert await redis.get(redis_keys.archiver_name_lease(old)) == b"a-cloned-machine|x|1"
    await assert_exactly_once(redis, engine, traffic)
    await traffic.close()


async def _renamed(archiver: Any, old: str) -> bool:
    return bool(archiver.consumer != old)


async def test_names_are_leased_and_released_with_the_run(
    redis: Redis, archivers: Archivers
) -> None:
    archiver = archivers.new()
    assert await archiver.drain() == 0
    name = archiver.consumer
    assert name and not await redis.exists(redis_keys.archiver_name_lease(name))
