"""The nemesis: faults on a seeded random schedule, one at a time, each healed after.

Every fault is injected from outside the product (signals, proxies, Redis CONFIG, the
archiver's own failpoints, a skewed clock launcher) and recorded in the timeline with
its start, end and details, so the report can name the fault behind each violation.
Kinds that need what the engine lacks are skipped and said so (`skipped`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as redis_asyncio
from bench.chaos.accounts import account
from bench.chaos.clients import Account, Pace, slow_reader
from bench.chaos.cluster import Cluster
from bench.chaos.poison import huge_entries, poison_entries
from bench.chaos.processes import Process
from bench.chaos.proxy import ProxyState
from bench.chaos.stores import AofTail, hold_sqlite_lock
from bench.chaos.storm import USERS, connect_storm
from redis.exceptions import RedisError

from chatroom import redis_keys

FAULTS = (
    "archiver_kill",
    "archiver_crash_loop",
    "node_kill",
    "node_pause",
    "sql_pause",
    "sql_unreachable",
    "redis_kill",
    "redis_power_loss",
    "redis_maxmemory",
    "clock_skew",
    "slow_reader",
    "burst",
    "poison",
    "poison_huge",
    "connect_storm",
)
FSYNC_MODES = ("always", "everysec")
FAULT_LIMIT_S = 240.0  # no fault runs longer, whatever happens
CRASH_WAIT_S = 10.0  # a restarted archiver re-reads its pending batch well within this


@dataclass
class FaultRecord:
    kind: str
    start: float
    end: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Timeline:
    faults: list[FaultRecord] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # kind -> why
    poison: dict[tuple[str, str], str] = field(default_factory=dict)  # (room, id) -> kind

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for record in self.faults:
            found[record.kind] = found.get(record.kind, 0) + 1
        return found


class Nemesis:
    def __init__(
        self,
        cluster: Cluster,
        pace: Pace,
        rooms: list[str],
        spare: Account,
        kinds: list[str],
        rng: random.Random,
        *,
        long_run: bool,
        fsync_acks: bool = False,
        pinned_fsync: str | None = None,
    ) -> None:
        self.cluster = cluster
        self.pace = pace
        self.rooms = rooms
        self.spare = spare
        self.kinds = kinds
        self.rng = rng
        self.long_run = long_run
        self.timeline = Timeline()
        self.redis = redis_asyncio.Redis.from_url(cluster.redis_url, socket_timeout=5)
        self.slow_readers: list[dict[str, Any]] = []
        self.storms: list[FaultRecord] = []
        self._storm_users: list[Account] = []
        self._fsync_turn = 0
        # ack_durability fsync: every ack was fsynced, so a power cut loses no acked byte.
        self.fsync_acks = fsync_acks
        self.pinned_fsync = pinned_fsync
        self._huge_once = False
        self._runs: dict[str, Callable[[FaultRecord], Awaitable[None]]] = {
            "archiver_kill": self.archiver_kill,
            "archiver_crash_loop": self.archiver_crash_loop,
            "node_kill": self.node_kill,
            "node_pause": self.node_pause,
            "sql_pause": self.sql_pause,
            "sql_unreachable": self.sql_unreachable,
            "redis_kill": self.redis_kill,
            "redis_power_loss": self.redis_power_loss,
            "redis_maxmemory": self.redis_maxmemory,
            "clock_skew": self.clock_skew,
            "slow_reader": self.slow_reader,
            "burst": self.burst,
            "poison": self.poison,
            "poison_huge": self.poison_huge,
            "connect_storm": self.connect_storm,
        }
        embedded = cluster.engine == "embedded"
        if embedded:
            self.timeline.skipped["sql_unreachable"] = (
                "embedded SQLite has no connection to cut; sql_pause holds its write lock"
            )
        for kind in list(self.kinds):
            if kind in self.timeline.skipped:
                self.kinds.remove(kind)

    # The schedule.

    async def run(self, stop: asyncio.Event) -> None:
        if not self.kinds:
            await stop.wait()
            return
        self.aof = AofTail(self._aof_folder())
        sampler = asyncio.create_task(self.aof.watch())
        try:
            # Every kind once, in a seeded order, then seeded random picks.
            order = list(self.kinds)
            self.rng.shuffle(order)
            while not stop.is_set():
                await _wait(stop, self.rng.uniform(2.0, 6.0))
                if stop.is_set():
                    return
                kind = order.pop(0) if order else self.rng.choice(self.kinds)
                record = FaultRecord(kind, start=time.time())
                self.timeline.faults.append(record)
                print(f"nemesis: {kind}", flush=True)
                try:
                    async with asyncio.timeout(FAULT_LIMIT_S):
                        await self._runs[kind](record)
                except Exception as exc:
                    record.detail["interrupted"] = f"{type(exc).__name__}: {exc}"[:200]
                finally:
                    record.end = time.time()
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler

    def _hold(self, short: tuple[float, float], long: tuple[float, float]) -> float:
        low, high = long if self.long_run else short
        return round(self.rng.uniform(low, high), 1)

    # Archivers.

    def _archiver(self, record: FaultRecord) -> Process:
        index = self.rng.randrange(len(self.cluster.archivers))
        record.detail["archiver"] = index
        return self.cluster.archivers[index]

    async def archiver_kill(self, record: FaultRecord) -> None:
        archiver = self._archiver(record)
        await asyncio.to_thread(archiver.kill9)
        down = self._hold((0.0, 3.0), (0.0, 10.0))
        record.detail["down_s"] = down
        await asyncio.sleep(down)
        archiver.start()

    async def archiver_crash_loop(self, record: FaultRecord) -> None:
        """Restart an archiver again and again with a failpoint that kills it while it
        holds a batch: the same entries are delivered to it over and over."""
        archiver = self._archiver(record)
        point = self.rng.choice(
            ["after_read", "after_insert_before_commit", "after_commit_before_ack"]
        )
        record.detail["failpoint"] = point
        await asyncio.to_thread(archiver.kill9)
        crashes = 0
        for _ in range(self.cluster.tuning.max_deliveries + 2):
            archiver.start({"CHATROOM_FAILPOINT": point})
            deadline = time.monotonic() + CRASH_WAIT_S
            while archiver.alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if archiver.alive():  # it read nothing to crash on: it holds no batch now
                await asyncio.to_thread(archiver.kill9)
                break
            crashes += 1
        record.detail["crashes"] = crashes
        archiver.start()

    async def clock_skew(self, record: FaultRecord) -> None:
        archiver = self._archiver(record)
        offset = self.rng.choice([-1, 1]) * round(self.rng.uniform(30, 3600))
        record.detail["offset_s"] = offset
        normal = list(archiver.argv)
        await asyncio.to_thread(archiver.kill9)
        archiver.argv = [sys.executable, "-m", "bench.chaos.skewed_clock", str(offset), "archive"]
        try:
            archiver.start()
            await asyncio.sleep(self._hold((15, 30), (60, 180)))
            await asyncio.to_thread(archiver.kill9)
        finally:
            archiver.argv = normal
        archiver.start()

    # App nodes.

    async def node_kill(self, record: FaultRecord) -> None:
        index = self.rng.randrange(len(self.cluster.nodes))
        record.detail["node"] = index
        await asyncio.to_thread(self.cluster.nodes[index].kill9)
        down = self._hold((2, 8), (2, 30))
        record.detail["down_s"] = down
        await asyncio.sleep(down)
        await self.cluster.start_node(index)

    async def node_pause(self, record: FaultRecord) -> None:
        """SIGSTOP a node and stall its Redis link long enough for the archivers to trim
        past where its fan-out stands; then both come back."""
        index = self.rng.randrange(len(self.cluster.nodes))
        node = self.cluster.nodes[index]
        held = self._hold((8, 20), (8, 35))
        record.detail.update(node=index, held_s=held)
        proxy = self.cluster.node_proxies[index] if self.cluster.node_proxies else None
        if proxy is not None:
            await proxy.set_state(ProxyState.paused)
        node.pause()
        try:
            await asyncio.sleep(held)
        finally:
            node.resume()
            if proxy is not None:
                await proxy.set_state(ProxyState.open)

    # SQL.

    async def sql_pause(self, record: FaultRecord) -> None:
        held = self._hold((5, 20), (5, 30))
        record.detail["held_s"] = held
        if self.cluster.mariadb is not None:
            self.cluster.mariadb.pause()
            try:
                await asyncio.sleep(held)
            finally:
                self.cluster.mariadb.resume()
            return
        record.detail["how"] = "SQLite write lock held"
        await asyncio.to_thread(hold_sqlite_lock, self.cluster.data_dir / "chatroom.sqlite3", held)

    async def sql_unreachable(self, record: FaultRecord) -> None:
        held = self._hold((15, 30), (60, 90))
        record.detail["held_s"] = held
        assert self.cluster.sql_proxy is not None
        await self.cluster.sql_proxy.set_state(ProxyState.refusing)
        try:
            await asyncio.sleep(held)
        finally:
            await self.cluster.sql_proxy.set_state(ProxyState.open)

    # Redis.

    async def _set_fsync(self, record: FaultRecord, mode: str | None = None) -> str:
        if self.pinned_fsync is not None:
            mode = self.pinned_fsync
        elif mode is None:
            mode = FSYNC_MODES[self._fsync_turn % len(FSYNC_MODES)]
            self._fsync_turn += 1
        await self.redis.config_set("appendfsync", mode)
        record.detail["appendfsync"] = mode
        return mode

    def _redis_pid(self) -> int | None:
        if self.cluster.redis is not None:
            return self.cluster.redis.pid
        return self.cluster.embedded_server_pid()

    def _aof_folder(self) -> Path:
        if self.cluster.redis is not None:
            return self.cluster.root / "redis"
        return self.cluster.data_dir / "redis"

    async def _restart_redis(self, record: FaultRecord) -> None:
        down = self._hold((1, 3), (1, 10))
        record.detail["down_s"] = down
        await asyncio.sleep(down)
        if self.cluster.redis is not None:
            self.cluster.redis.start()
            await asyncio.to_thread(self.cluster.redis.wait_listening, 60.0)
        await self._wait_redis()
        await self.redis.connection_pool.disconnect()

    async def _wait_redis(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(RedisError, OSError):
                if await self.redis.ping():
                    return
            await asyncio.sleep(0.2)

    def _kill_redis(self) -> None:
        if self.cluster.redis is not None:
            self.cluster.redis.kill9()
            return
        pid = self.cluster.embedded_server_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    async def redis_kill(self, record: FaultRecord) -> None:
        """kill -9 under load, restart from the AOF; fsync modes take turns."""
        await self._set_fsync(record)
        await asyncio.sleep(self._hold((2, 5), (2, 20)))
        await asyncio.to_thread(self._kill_redis)
        await self._restart_redis(record)

    async def redis_power_loss(self, record: FaultRecord) -> None:
        """What a power cut does: the AOF loses what was written but not yet fsynced.
        Emulated: Redis is stopped, its AOF cut back to where its last fsync ended (as
        recorded by bench/chaos/fsync_records.py; without it, to its size one second
        before), then killed and started again. Under ack_durability fsync appendfsync
        stays always: every acked append was fsynced, and the cut must not reach one."""
        await self._set_fsync(record, "everysec")
        await asyncio.sleep(self._hold((2, 5), (2, 20)))
        pid = self._redis_pid()
        if pid is None:
            record.detail["interrupted"] = "no Redis pid"
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
        records = self.cluster.fsync_records
        synced_cut = None if records is None else self.aof.cut_to_synced(records, pid)
        if records is not None and synced_cut is None:
            record.detail["fsync_records"] = f"none from the Redis process {pid}"
        if synced_cut is not None:
            cut = synced_cut
            record.detail["aof_cut"] = "to the last fsync"
        elif self.fsync_acks:
            # Without the recorder the last fsync is unknown; one second back could cut
            # what an fsync had confirmed, so nothing is cut.
            cut = 0
            record.detail["aof_cut"] = "none: fsync acks, no fsync records"
        else:
            cut = self.aof.cut_back(time.time() - 1.0)
            record.detail["aof_cut"] = "one second back"
        record.detail["aof_bytes_cut"] = cut
        record.detail["cut_at"] = time.time()
        await asyncio.to_thread(self._kill_redis)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # a killed, stopped process goes once continued
        await self._restart_redis(record)

    async def redis_maxmemory(self, record: FaultRecord) -> None:
        """Redis full (maxmemory, noeviction): sends must fail cleanly; the archivers are
        restarted while it is full, as after a crash or a deploy."""
        info: Any = await self.redis.info("memory")
        used = int(info["used_memory"])
        await self.redis.config_set("maxmemory", str(used + 256 * 1024))
        record.detail["maxmemory"] = used + 256 * 1024
        try:
            await asyncio.sleep(2.0)
            for archiver in self.cluster.archivers:
                await asyncio.to_thread(archiver.kill9)
                archiver.start()
            await asyncio.sleep(self._hold((10, 20), (20, 60)))
            record.detail["archivers_alive_when_full"] = [a.alive() for a in self.cluster.archivers]
        finally:
            await self.redis.config_set("maxmemory", "0")
        for archiver in self.cluster.archivers:
            if not archiver.alive():
                record.detail.setdefault("archivers_exited", []).append(archiver.name)
                archiver.start()

    # Clients and entries.

    async def slow_reader(self, record: FaultRecord) -> None:
        node = self.rng.randrange(len(self.cluster.nodes))
        held = self._hold((15, 30), (30, 90))
        record.detail.update(node=node, held_s=held)
        found = await slow_reader(self.cluster.node_url(node), self.spare, self.rooms, held)
        record.detail.update(close_code=found.close_code, frames_read=found.frames_read)
        record.detail["note"] = found.note
        self.slow_readers.append(record.detail)

    async def connect_storm(self, record: FaultRecord) -> None:
        """2,000 sockets over both nodes opened at once, then closed at once; every storm
        user must leave every room's presence (bench/chaos/storm.py)."""
        if not self._storm_users:  # made the first time only: sign-ups cost argon2 time
            url = self.cluster.node_url(0)
            self._storm_users = [await account(url, f"storm_{i}") for i in range(USERS)]
        urls = [self.cluster.node_url(i) for i in range(len(self.cluster.nodes))]
        found = await connect_storm(urls, self._storm_users, self.rooms, self.cluster.redis_url)
        record.detail.update(found.detail())
        self.storms.append(record)

    async def burst(self, record: FaultRecord) -> None:
        held = self._hold((4, 8), (5, 20))
        record.detail["held_s"] = held
        self.pace.multiplier = 10.0
        self.pace.bursts += 1
        try:
            await asyncio.sleep(held)
        finally:
            self.pace.multiplier = 1.0

    async def poison(self, record: FaultRecord) -> None:
        """Malformed entries: not JSON, deep JSON, garbage fields, wrong values."""
        room = self.rng.choice(self.rooms)
        await self._write_poison(record, room, poison_entries(room))

    async def poison_huge(self, record: FaultRecord) -> None:
        """A 3 MB entry and, the first time, one over MariaDB's max_allowed_packet."""
        entries = huge_entries(with_over_packet=not self._huge_once)
        self._huge_once = True
        await self._write_poison(record, self.rng.choice(self.rooms), entries)

    async def _write_poison(
        self, record: FaultRecord, room: str, entries: list[tuple[str, dict[bytes, bytes]]]
    ) -> None:
        record.detail["room"] = room
        for kind, fields in entries:
            key = redis_keys.room_stream(room)
            entry_id = await self.redis.xadd(key, fields)  # type: ignore[arg-type]
            text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            self.timeline.poison[(room, text)] = kind
        record.detail["entries"] = [kind for kind, _ in entries]


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
