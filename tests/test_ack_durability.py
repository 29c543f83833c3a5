"""What an ack survives (PRODUCT.md invariant 11): kill -9 Redis while many senders have
appends in flight, start it again from its AOF, and look for every acknowledged message.

Under `ack_durability = fsync` (Redis runs `appendfsync always`) every acked message must
be there, after a kill -9 and after a power cut: the AOF cut back to where its last fsync
ended, as recorded in the server by bench/chaos/fsync_records.py. (WAITAOF under
`everysec` did not pass that: it confirms writes no fsync has reached yet.) Under `write`
with `appendfsync everysec` a kill may lose the last acked appends or not (the kernel
usually has them); the test does not count on either, it checks that the mode is reported
as not durable against a kill. Each server is a process of the test's own, on a port of
21100-21199.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bench.chaos import fsync_records
from bench.chaos.stores import aof_tail_file
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from chatroom import redis_keys
from chatroom.domain.events import Author, MessageEvent
from chatroom.embedded import _binary as valkey_binary
from chatroom.loopback_ports import free_port
from chatroom.settings import AckDurability
from chatroom.streams.persistence import (
    DurabilityUnavailable,
    check_persistence,
    enforce_persistence,
)
from chatroom.streams.writer import StreamWriter
from waiting import WaitTimeout, wait_until, wait_until_sync

pytestmark = pytest.mark.processes

SENDERS = 40
ROOMS = 4


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class OwnRedis:
    """A redis-server (or valkey-server) of the test's, restartable on its own files."""

    binary: str
    folder: Path
    options: list[str]
    env: dict[str, str] | None = None  # the fsync recorder's, for a power cut
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.port = self.port or free_port()
        self.process = subprocess.Popen(
            [
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *("--dir", str(self.folder), *self.options),
            ],
            stdout=subprocess.DEVNULL,
            env=None if self.env is None else {**os.environ, **self.env},
        )
        wait_until_sync(lambda: _listening(self.port), 20, what=f"{self.binary} on {self.port}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def power_cut(self) -> None:
        """Stop Redis, cut its AOF back to where the last fsync ended, kill it: what a
        power cut leaves on disk. Needs the recorder (`env`)."""
        assert self.process is not None and self.env is not None
        records = Path(self.env[fsync_records.FOLDER_VARIABLE])
        self.process.send_signal(signal.SIGSTOP)
        tail = aof_tail_file(self.folder)
        assert tail is not None
        synced = fsync_records.synced_size(records, tail, self.process.pid)
        assert synced is not None, "no fsync of the AOF was recorded"
        with tail.open("r+b") as handle:
            handle.truncate(synced)
        fsync_records.forget(records)
        self.kill()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()


@contextlib.contextmanager
def own_redis(
    tmp_path: Path, binary: str, *options: str, env: dict[str, str] | None = None
) -> Iterator[OwnRedis]:
    server = OwnRedis(binary, tmp_path, list(options), env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _client(url: str) -> Redis:
    return Redis.from_url(
        url, socket_timeout=2.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0)
    )


async def _loading_done(url: str) -> None:
    client = _client(url)
    try:
        for _ in range(200):
            try:
                await client.xlen("probe")
                return
            except RedisError:  # LOADING the AOF
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def send_and_kill(server: OwnRedis, *, power_cut: bool = False) -> dict[str, tuple[str, str]]:
    """Many senders append until Redis is killed -9 (or loses power) under them; their
    acks by client_id."""
    client = _client(server.url)
    writer = StreamWriter(client, client_id_ttl_s=3600, retry_s=0.3)
    acked: dict[str, tuple[str, str]] = {}
    stop = asyncio.Event()

    async def sender(n: int) -> None:
        author = Author(n + 1, f"sender{n}", f"Sender {n}")
        room = f"room-{n % ROOMS}"
        i = 0
        while not stop.is_set():
            i += 1
            client_id = f"s{n}-{i}"
            try:
                appended = await writer.append(MessageEvent(room, author, f"m {i}", client_id))
            except RedisError:
                await asyncio.sleep(0.02)
                continue
            acked[client_id] = (room, str(appended.id))

    senders = [asyncio.create_task(sender(n)) for n in range(SENDERS)]
    # Under way (many acks), however slow the machine, before the kill.
    try:
        await wait_until(lambda: len(acked) > 50, 30)
        under_way = True
    except WaitTimeout:
        under_way = False
    # While appends are in flight: the senders never pause.
    (server.power_cut if power_cut else server.kill)()
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*senders)
    await writer.close()
    await client.aclose()
    assert under_way, "the senders were not under way when Redis went down"
    return acked


async def missing_after_restart(server: OwnRedis, acked: dict[str, tuple[str, str]]) -> list[str]:
    server.start()  # the same port and folder: from its AOF
    await _loading_done(server.url)
    client = _client(server.url)
    try:
        stored: set[tuple[str, str]] = set()
        for room in {room for room, _ in acked.values()}:
            entries = await client.xrange(redis_keys.room_stream(room))
            stored |= {(room, entry_id.decode()) for entry_id, _ in entries}
    finally:
        await client.aclose()
    return [client_id for client_id, found in acked.items() if found not in stored]


async def test_fsync_needs_appendfsync_always_then_loses_no_acked_message_to_kill_9(
    tmp_path: Path,
) -> None:
    with own_redis(
        tmp_path, str(valkey_binary()), "--appendonly", "yes", "--appendfsync", "everysec"
    ) as server:
        client = _client(server.url)
        with pytest.raises(DurabilityUnavailable, match="set appendfsync always"):
            await enforce_persistence(client, strict=False, ack_durability=AckDurability.fsync)
        await client.config_set("appendfsync", "always")
        report = await enforce_persistence(client, strict=True, ack_durability=AckDurability.fsync)
        await client.aclose()
        assert report.durable_against_kill and "appendfsync always" in report.guarantee
        acked = await send_and_kill(server)
        server.options = ["--appendonly", "yes", "--appendfsync", "always"]
        assert await missing_after_restart(server, acked) == []


async def test_fsync_loses_no_acked_message_to_a_power_cut(tmp_path: Path) -> None:
    library = fsync_records.build(tmp_path / "recorder")
    if library is None:
        pytest.skip("no C compiler to build the fsync recorder (bench/chaos/fsync_recorder.c)")
    env = fsync_records.preload_env(library, tmp_path / "fsync-records")
    with own_redis(
        tmp_path, str(valkey_binary()), "--appendonly", "yes", "--appendfsync", "always", env=env
    ) as server:
        client = _client(server.url)
        await enforce_persistence(client, strict=True, ack_durability=AckDurability.fsync)
        await client.aclose()
        acked = await send_and_kill(server, power_cut=True)
        assert await missing_after_restart(server, acked) == []


async def test_fsync_on_redis_server_needs_appendfsync_always_too(tmp_path: Path) -> None:
    with own_redis(
        tmp_path, "redis-server", "--appendonly", "yes", "--appendfsync", "everysec"
    ) as server:
        client = _client(server.url)
        with pytest.raises(DurabilityUnavailable, match="set appendfsync always"):
            await enforce_persistence(client, strict=False, ack_durability=AckDurability.fsync)
        await client.config_set("appendfsync", "always")
        report = await enforce_persistence(client, strict=True, ack_durability=AckDurability.fsync)
        await client.aclose()
        assert report.durable_against_kill and "appendfsync always" in report.guarantee
        acked = await send_and_kill(server)
        server.options = ["--appendonly", "yes", "--appendfsync", "always"]
        assert await missing_after_restart(server, acked) == []


async def test_fsync_without_aof_refuses_to_start_with_the_fix(tmp_path: Path) -> None:
    with own_redis(tmp_path, str(valkey_binary()), "--appendonly", "no") as server:
        client = _client(server.url)
        with pytest.raises(DurabilityUnavailable, match=r"appendonly yes.*ACK_DURABILITY=write"):
            await enforce_persistence(client, strict=False, ack_durability=AckDurability.fsync)
        await client.aclose()


async def test_write_with_everysec_is_reported_as_not_durable_against_a_kill(
    tmp_path: Path,
) -> None:
    with own_redis(
        tmp_path, "redis-server", "--appendonly", "yes", "--appendfsync", "everysec"
    ) as server:
        client = _client(server.url)
        report = await check_persistence(client, AckDurability.write)
        await client.aclose()
        assert not report.durable_against_kill and not report.persistence_ok
        assert "NOT durable" in report.guarantee and "1-2 s" in report.guarantee
        acked = await send_and_kill(server)
        # Whatever this kill lost (often nothing: the kernel had the writes) is allowed.
        missing = await missing_after_restart(server, acked)
        print(f"write/everysec: {len(missing)} of {len(acked)} acked appends lost to kill -9")
