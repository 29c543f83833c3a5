"""Fault tests: kill -9 at each failpoint, a random kill loop under load, SQL unreachable
for a while, a Redis with AOF killed and restarted, and the process' signals and
metrics. After each: every acknowledged message in SQL exactly once with its exact
bytes, nothing pending, history gapless."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.loopback_ports import free_port
from chatroom.redis_client import connect
from chatroom.status import collect_status
from chatroom.store.database import create_engine
from conftest import Backend
from test_archiver_support import (
    Archivers,
    Traffic,
    archived_rows,
    archived_total,
    assert_exactly_once,
    create_room,
    dead_letter_rows,
    pending_count,
    wait_for,
)
from waiting import wait_until


def _archive_env(backend: Backend, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = backend.env()
    for name in ("CHATROOM_FAILPOINT", "CHATROOM_FAILPOINT_AFTER"):
        env.pop(name, None)
    env.update(
        {
            "CHATROOM_DATA_DIR": str(tmp_path / "data"),
            "CHATROOM_ARCHIVER_BATCH_SIZE": "100",
            "CHATROOM_ARCHIVER_FLUSH_MS": "20",
            "CHATROOM_ARCHIVER_BLOCK_MS": "200",
            "CHATROOM_ARCHIVER_HOT_WINDOW": "50",
            "CHATROOM_ARCHIVER_CLAIM_IDLE_MS": "500",
            "CHATROOM_LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


async def _start(python: str, env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        python,
        "-m",
        "chatroom",
        "archive",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _run(python: str, env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await _start(python, env, *args)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize(
    "point", ["after_read", "after_insert_before_commit", "after_commit_before_ack"]
)
async def test_kill_9_at_a_failpoint_then_restart(
    point: str, backend: Backend, redis: Redis, engine: AsyncEngine, tmp_path: Path, python: str
) -> None:
    await create_room(engine, "dev")
    traffic = Traffic(redis)
    await traffic.send("lobby", 300)
    await traffic.send("dev", 150)
    # Changes in flight too: the batch killed holds some, applied exactly once after.
    await traffic.change("lobby", 150, seed=1)
    await traffic.change("dev", 60, seed=2)
    await traffic.send("lobby", 50)
    env = _archive_env(backend, tmp_path, CHATROOM_FAILPOINT=point, CHATROOM_FAILPOINT_AFTER="2")
    code, err = await _run(python, env, "--once")
    assert code == -signal.SIGKILL, err
    assert await pending_count(redis, "lobby") + await pending_count(redis, "dev") > 0
    in_sql = await archived_total(engine)
    if point == "after_commit_before_ack":
        # Batch 2 is committed but not acknowledged: it will be archived again, as a no-op.
        assert in_sql > 0
    code, err = await _run(python, _archive_env(backend, tmp_path), "--once")
    assert code == 0, err
    await assert_exactly_once(redis, engine, traffic)
    await traffic.close()


async def test_a_second_archiver_adopts_a_killed_ones_pending_entries(
    backend: Backend,
    redis: Redis,
    engine: AsyncEngine,
    archivers: Archivers,
    tmp_path: Path,
    python: str,
) -> None:
    traffic = Traffic(redis)
    await traffic.send("lobby", 250)
    # The first archiver reads a batch and dies with it pending, never to come back.
    env = _archive_env(backend, tmp_path / "first", CHATROOM_FAILPOINT="after_read")
    code, err = await _run(python, env, "--once")
    assert code == -signal.SIGKILL, err
    orphaned = await pending_count(redis, "lobby")
    assert orphaned > 0 and await archived_total(engine) == 0
    await asyncio.sleep(0.15)  # past the claim idle time of the heir
    heir = archivers.new(data_dir=tmp_path / "heir" / "data")
    assert await heir.drain() == 250
    await assert_exactly_once(redis, engine, traffic)
    consumers: Any = await redis.xinfo_consumers(redis_keys.room_stream("lobby"), "archiver")
    assert all(int(c["pending"]) == 0 for c in consumers)
    await traffic.close()


@pytest.mark.slow
async def test_random_kill_loop_under_load(
    backend: Backend, redis: Redis, engine: AsyncEngine, tmp_path: Path, python: str
) -> None:
    rooms = ["lobby", "r1", "r2"]
    for slug in rooms[1:]:
        await create_room(engine, slug)
    traffic = Traffic(redis)
    rng = random.Random(20261127)
    sending = True

    async def produce() -> None:
        while sending:
            room = rng.choice(rooms)
            await traffic.send(room, rng.randint(5, 25))
            await traffic.change(room, rng.randint(0, 8), seed=rng.randint(0, 2**31))
            await asyncio.sleep(0.01)

    producer = asyncio.create_task(produce())
    # The default max deliveries: each kill adds a delivery to the batch in hand, and no
    # number of kills may turn a valid message into a dead letter.
    env = _archive_env(backend, tmp_path)
    kills = 0
    try:
        while kills < 8:
            before = await archived_total(engine)
            process = await _start(python, env)
            # Kill it while it works: once it archived something, after a random moment.
            with contextlib.suppress(AssertionError):
                await wait_for(
                    lambda before=before: _more_than(engine, before), timeout=10, what="work"
                )
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            assert process.returncode is None, (await process.communicate())[1].decode()
            process.kill()
            await process.wait()
            kills += 1
    finally:
        sending = False
        await producer
    assert kills >= 8
    code, err = await _run(python, env, "--once")
    assert code == 0, err
    assert traffic.count() > 500
    await assert_exactly_once(redis, engine, traffic)
    assert await dead_letter_rows(engine) == []
    await traffic.close()


@pytest.mark.slow
@pytest.mark.parametrize("point", ["after_read", "after_commit_before_ack"])
async def test_an_archiver_killed_again_and_again_on_one_batch_dead_letters_nothing(
    point: str, backend: Backend, redis: Redis, engine: AsyncEngine, tmp_path: Path, python: str
) -> None:
    traffic = Traffic(redis)
    await traffic.send("lobby", 20)
    env = _archive_env(backend, tmp_path, CHATROOM_FAILPOINT=point)
    # Killed while it holds the batch, more times than archiver_max_deliveries (5): the
    # batch is re-read as its own pending at each start, one delivery more each time.
    for _ in range(7):
        code, err = await _run(python, env, "--once")
        assert code == -signal.SIGKILL, err
    code, err = await _run(python, _archive_env(backend, tmp_path), "--once")
    assert code == 0, err
    # Before: 20 dead letters ("delivered 6 times"), and after_read left 0 rows.
    await assert_exactly_once(redis, engine, traffic)
    assert await dead_letter_rows(engine) == []
    assert "trying it alone" in err
    found = (await collect_status(redis, engine)).as_json()
    assert found["rooms"]["lobby"]["suspects"] == 20
    await traffic.close()


async def _more_than(engine: AsyncEngine, count: int) -> bool:
    return await archived_total(engine) > count


class TcpProxy:
    """A TCP relay to MariaDB that the test can cut (connections dropped, new ones
    refused) and restore: SQL unreachable, as a network or server outage looks."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


@contextlib.asynccontextmanager
async def _sql_unreachable(backend: Backend) -> AsyncIterator[tuple[str, object]]:
    """A database URL for the archiver, and a context manager that takes SQL away."""
    if backend.name == "mariadb":
        url = make_url(backend.database_url)
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 3306)
        await proxy.start()

        @contextlib.asynccontextmanager
        async def outage() -> AsyncIterator[None]:
            await proxy.cut()
            yield
            await proxy.start()

        yield url.set(port=proxy.port).render_as_string(hide_password=False), outage
        if proxy._server is not None:
            await proxy.cut()
    else:
        path = make_url(backend.database_url).database
        assert path is not None

        @contextlib.asynccontextmanager
        async def outage() -> AsyncIterator[None]:
            # SQLite has no server to lose; the nearest thing is a writer holding the
            # file: every write waits until it lets go.
            holder = sqlite3.connect(path, timeout=30)
            holder.execute("BEGIN EXCLUSIVE")
            yield
            holder.rollback()
            holder.close()

        yield backend.database_url, outage


async def test_sql_unreachable_for_a_while(
    backend: Backend,
    redis: Redis,
    engine: AsyncEngine,
    archivers: Archivers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="chatroom.archiver")
    traffic = Traffic(redis)
    async with _sql_unreachable(backend) as (url, outage):
        archiver_engine = create_engine(url)
        running = archivers.start(archivers.new(engine=archiver_engine))
        await traffic.send("lobby", 100)
        await wait_for(lambda: _more_than(engine, 99), what="archiving before the outage")
        async with outage():  # type: ignore[operator]
            for _ in range(10):
                await traffic.send("lobby", 30)
                await asyncio.sleep(0.15)
            if backend.name == "mariadb":
                assert await archived_total(engine) == 100  # the backlog waits in Redis
        await wait_for(lambda: _more_than(engine, 399), what="the backlog drained")
        await running.stop(timeout=30)
        await archiver_engine.dispose()
    await assert_exactly_once(redis, engine, traffic)
    if backend.name == "mariadb":
        down = [r for r in caplog.records if "SQL is unreachable" in r.getMessage()]
        back = [r for r in caplog.records if "SQL is back" in r.getMessage()]
        assert len(down) == 1 and len(back) == 1  # once per state change, not per retry
    await traffic.close()


class AofRedis:
    """Our own redis-server with AOF (fsync always) on a free port, to kill and restart."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "/usr/bin/redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None


@pytest.mark.slow
async def test_redis_with_aof_killed_and_restarted(
    engine: AsyncEngine, archivers: Archivers, tmp_path: Path
) -> None:
    server = AofRedis(tmp_path)
    server.start()
    redis = connect(server.url)
    traffic = Traffic(redis)
    try:
        running = archivers.start(archivers.new(redis_url=server.url))
        await traffic.send("lobby", 200)
        await wait_for(lambda: _more_than(engine, 0), what="archiving before the kill")
        await traffic.send("lobby", 200)
        server.kill()
        await asyncio.sleep(0.5)  # the archiver meets the outage
        server.start()
        await traffic.send("lobby", 100)
        await wait_for(lambda: _more_than(engine, 499), what="everything archived")
        await running.stop(timeout=30)
        await assert_exactly_once(redis, engine, traffic)
    finally:
        await traffic.close()
        await redis.aclose()
        if server.process is not None:
            server.kill()


async def test_process_serves_metrics_and_exits_0_on_sigterm(
    backend: Backend, redis: Redis, engine: AsyncEngine, tmp_path: Path, python: str
) -> None:
    port = free_port()
    env = _archive_env(backend, tmp_path, CHATROOM_METRICS_PORT=str(port))
    process = await _start(python, env)
    traffic = Traffic(redis)
    await traffic.send("lobby", 120)
    await wait_for(lambda: _more_than(engine, 119), what="archived by the process")

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return str(answer.read().decode())

    # The counter moves once the batch's commit is acked, a moment after the rows land.
    counted = 'chatroom_archiver_archived_rows_total{room="lobby"} 120.0'
    text = await wait_until(
        lambda: _scraped_with(scrape, counted), 20, what="the archived rows on /metrics"
    )
    assert "chatroom_archiver_batch_duration_seconds_bucket" in text
    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 0, err.decode()
    await assert_exactly_once(redis, engine, traffic)
    assert len(await archived_rows(engine, "lobby")) == 120
    await traffic.close()


async def _scraped_with(scrape: Callable[[], str], line: str) -> str | None:
    text = await asyncio.to_thread(scrape)
    return text if line in text else None


async def test_a_wrong_failpoint_is_a_clear_error(tmp_path: Path, python: str) -> None:
    env = {
        **os.environ,
        "CHATROOM_REDIS_URL": "redis://127.0.0.1:9/0",  # never reached: the check comes first
        "CHATROOM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'unused.sqlite3'}",
        "CHATROOM_FAILPOINT": "after_lunch",
    }
    code, err = await _run(python, env, "--once")
    assert code == 2 and "after_lunch" in err and "Traceback" not in err
