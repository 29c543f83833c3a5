"""`chatroom serve --workers 2`, a real process, on the embedded defaults (the parent
starts Valkey and migrates SQLite) and on Redis + MariaDB.

Clients land on both workers (each socket's upgrade answer names its node) and all see
the room's one sequence; /metrics, whichever worker answers, shows both workers' figures
summed; one worker runs the archiver. Then that worker is killed with SIGKILL: its
clients reconnect (to the same port) and resume with `since`, resending what was never
answered; another worker takes the archiver over; the supervisor starts a replacement.
SIGTERM to the parent closes every socket with a going-away code and exits 0. Every
acknowledged message is archived once, and every client's sequence has no gap, repeat
or reorder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from chat_servers import TEST_LIMITS, ChatServer, _stop, free_port, login, register
from chatroom.domain.stream_ids import StreamId
from chatroom.store.database import create_engine
from conftest import BACKENDS, MARIADB_URL, REDIS_URL, _redis, _reset_mariadb
from test_archiver_support import archived_rows
from waiting import wait_until
from ws_clients import ChatSocket, open_socket

# Two real `serve` runs of three processes each, on a shared 2-core machine.
pytestmark = [pytest.mark.processes, pytest.mark.timeout(300)]
STARTUP_TIMEOUT_S = 120.0

SETTINGS = {
    **TEST_LIMITS,
    "send_rate_per_s": "100000",
    "send_burst": "100000",
    "frame_rate_per_s": "100000",
    "frame_burst": "100000",
}
CLIENTS = 6
PER_NODE = 2  # at least this many clients on each worker
BEFORE_KILL = 10  # sends per client, all answered before the kill
AFTER_KILL = 30  # sends per client around the kill
NODE_HEADER = "x-chatroom-node"


@dataclass
class Workers:
    server: ChatServer
    database_url: str

    def pids(self, line: str) -> list[int]:
        """The pids in the log's lines that match `line` (a regex with one pid group)."""
        return [int(p) for p in re.findall(line, self.server.log())]

    def archiver_pids(self) -> list[int]:
        return self.pids(r"worker (\d+) runs the archiver")

    def started_pids(self) -> list[int]:
        return self.pids(r"\[(\d+)\] uvicorn.error: Application startup complete")


@pytest.fixture(params=["embedded-defaults", "mariadb"])
async def workers(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Workers]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATROOM_")}
    data_dir = tmp_path / "data"
    if request.param == "embedded-defaults":
        if "embedded" not in BACKENDS:
            pytest.skip("embedded not in CHATROOM_TEST_BACKENDS")
        database_url = f"sqlite+aiosqlite:///{data_dir / 'chatroom.sqlite3'}"
    else:
        if "mariadb" not in BACKENDS:
            pytest.skip("mariadb not in CHATROOM_TEST_BACKENDS")
        database_url = MARIADB_URL
        await _reset_mariadb(MARIADB_URL)
        async with _redis(REDIS_URL) as client:
            await client.flushdb()
        env.update({"CHATROOM_REDIS_URL": REDIS_URL, "CHATROOM_DATABASE_URL": MARIADB_URL})
    port = free_port()
    env.update({"CHATROOM_PORT": str(port), "CHATROOM_DATA_DIR": str(data_dir)})
    env.update({f"CHATROOM_{k.upper()}": v for k, v in SETTINGS.items()})
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatroom", "serve", "--workers", "2"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    server = ChatServer(f"http://127.0.0.1:{port}", process, log_path)
    found = Workers(server, database_url)
    try:
        # Each worker imports everything afresh (spawned): on a loaded 2-core machine that
        # has taken 20 s.
        await wait_until(
            lambda: len(found.started_pids()) == 2 or process.poll() is not None,
            STARTUP_TIMEOUT_S,
            what="both workers started",
        )
        assert process.poll() is None, server.log()
        yield found
    finally:
        _stop(process)
    # SIGTERM drained the workers and the parent: nothing of theirs is left.
    assert process.returncode == 0, server.log()[-3000:]
    assert "Stopping parent process" in server.log()


@dataclass
class Client:
    """One user's socket on the port: its node, its sends, the room as it received it."""

    name: str
    http: httpx.AsyncClient
    server: ChatServer
    acked: dict[str, str] = field(default_factory=dict)  # client_id -> id
    unanswered: list[str] = field(default_factory=list)  # client_ids, in send order
    received: list[str] = field(default_factory=list)  # message ids, every connection
    start: str | None = None
    node: str = ""
    reconnects: int = 0
    sent: int = 0
    socket: ChatSocket | None = None

    async def connect(self) -> None:
        self.socket = await open_socket(self.server, self.http)
        self.node = self.socket.socket.response.headers[NODE_HEADER]
        since = self.received[-1] if self.received else self.start
        subscribed = await self.socket.subscribe(since=since)
        if self.start is None:
            self.start = str(subscribed["last_id"])
        for client_id in list(self.unanswered):  # resent with the same client_id
            await self._send(client_id)

    async def _send(self, client_id: str) -> None:
        assert self.socket is not None
        await self.socket.send(
            {"type": "send", "room": "lobby", "body": client_id, "client_id": client_id}
        )

    async def send(self, count: int) -> None:
        for _ in range(count):
            client_id = f"{self.name}-{self.sent}"
            self.sent += 1
            self.unanswered.append(client_id)
            with contextlib.suppress(ConnectionClosed):
                await self._send(client_id)  # a lost one is resent on reconnect
            await asyncio.sleep(0.01)

    async def read(self) -> None:
        """Frames until cancelled; a lost connection is opened again and resumes."""
        while True:
            assert self.socket is not None
            try:
                frame = await self.socket.next(timeout=60)
            except ConnectionClosed:
                self.reconnects += 1
                await self.connect()
                continue
            if frame["type"] == "message":
                self.received.append(frame["id"])
            elif frame["type"] == "ack":
                self.acked[frame["client_id"]] = frame["id"]
                with contextlib.suppress(ValueError):
                    self.unanswered.remove(frame["client_id"])
            elif frame["type"] in ("error", "resync"):
                raise AssertionError(f"{self.name} got {frame}")


async def _spread(clients: list[Client]) -> dict[str, list[Client]]:
    """Connect every client, then move clients off a crowded worker until each of the
    two has PER_NODE: the kernel hands a connection to whichever worker accepts first."""
    for client in clients:
        await client.connect()
    for _ in range(60):
        by_node: dict[str, list[Client]] = {}
        for client in clients:
            by_node.setdefault(client.node, []).append(client)
        if len(by_node) == 2 and min(len(c) for c in by_node.values()) >= PER_NODE:
            return by_node
        crowded = max(by_node.values(), key=len)[-1]
        assert crowded.socket is not None
        await crowded.socket.close()
        await crowded.connect()  # before any send: it resumes from its start
    raise AssertionError(f"60 connections in a row went to one worker: {by_node.keys()}")


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else -1.0


async def test_two_workers_serve_one_room_and_survive_a_sigkill(workers: Workers) -> None:
    server = workers.server
    https = []
    for i in range(CLIENTS):
        http = server.client()
        https.append(http)
        await register(http, f"user{i}")
        await login(http, f"user{i}")
    clients = [Client(f"c{i}", https[i], server) for i in range(CLIENTS)]
    reading: list[asyncio.Task[None]] = []
    try:
        by_node = await _spread(clients)
        reading = [asyncio.create_task(c.read()) for c in clients]

        # Both workers' clients see every message, in one order.
        await asyncio.gather(*(c.send(BEFORE_KILL) for c in clients))
        total = CLIENTS * BEFORE_KILL
        await wait_until(
            lambda: all(len(c.received) == total for c in clients) or _failed(reading),
            60,
            what="every client received every message",
        )
        _raise_from(reading)
        assert all(c.received == clients[0].received for c in clients)

        # /metrics, from whichever worker answers, sums both.
        async def metrics_sum() -> bool:
            text = (await https[0].get("/metrics")).text
            return (
                _metric(text, "chatroom_ws_messages_in_total") == total
                and _metric(text, "chatroom_ws_connections") == CLIENTS
            )

        for _ in range(4):  # new connections: answered by one worker or the other
            await wait_until(metrics_sum, what="/metrics shows both workers' figures")

        # One archiver: kill its worker, with sends in flight.
        [archiver] = await wait_until(workers.archiver_pids, what="a worker runs the archiver")
        doomed = _node_of(workers, archiver, by_node)
        sending = [asyncio.create_task(c.send(AFTER_KILL)) for c in clients]
        await wait_until(
            lambda: sum(len(c.acked) for c in clients) >= total + CLIENTS * AFTER_KILL // 3,
            what="sends under way",
        )
        os.kill(archiver, signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*sending), 60)
        total += CLIENTS * AFTER_KILL
        await wait_until(
            lambda: all(len(c.acked) == c.sent for c in clients) or _failed(reading),
            60,
            what="every send answered",
        )
        last = max((i for c in clients for i in c.acked.values()), key=StreamId.parse)
        await wait_until(
            lambda: all(last in c.received for c in clients) or _failed(reading),
            60,
            what="every client received the room's last message",
        )
        _raise_from(reading)
        assert {c.name for c in clients if c.reconnects} == {c.name for c in doomed}

        # Another worker took the archiver over; a replacement worker started.
        pids = await wait_until(
            lambda: found if len(found := workers.archiver_pids()) == 2 else None,
            what="another worker runs the archiver",
        )
        assert pids[0] == archiver and pids[1] != archiver
        await wait_until(
            lambda: len(workers.started_pids()) == 3, STARTUP_TIMEOUT_S, what="a replacement worker"
        )
        assert f"Child process [{archiver}] died" in server.log()

        # The dead worker's live gauge is gone: the connections are the living ones'.
        async def connections_now() -> bool:
            text = (await https[0].get("/metrics")).text
            return _metric(text, "chatroom_ws_connections") == CLIENTS

        await wait_until(connections_now, what="/metrics counts the open sockets only")

        # SIGTERM to the parent drains both workers: the server closes every socket with
        # a going-away code (the clients would reconnect elsewhere), and the parent exits.
        for task in reading:
            task.cancel()
        await asyncio.gather(*reading, return_exceptions=True)
        reading = []
        server.process.send_signal(signal.SIGTERM)
        codes = set()
        for client in clients:
            assert client.socket is not None
            await asyncio.wait_for(client.socket.socket.wait_closed(), 60)
            codes.add(client.socket.socket.close_code)
        assert codes <= {1001, 1012}, codes  # going away, service restart
        await wait_until(lambda: server.process.poll() is not None, 60, what="the parent exits")
    finally:
        for task in reading:
            task.cancel()
        await asyncio.gather(*reading, return_exceptions=True)
        for client in clients:
            if client.socket is not None:
                await client.socket.close()
        for http in https:
            await http.aclose()

    # Every acknowledged message is archived once, under its acknowledged id; every
    # client received the room's sequence from its start, without gap or repeat.
    acked = {cid: StreamId.parse(i) for c in clients for cid, i in c.acked.items()}
    assert len(acked) == total
    engine = create_engine(workers.database_url)
    try:

        async def all_archived() -> list[tuple[StreamId, str, str]] | None:
            rows = await archived_rows(engine, "lobby")
            return rows if len(rows) >= total else None

        rows = await wait_until(all_archived, 60, what="every acked message archived")
    finally:
        await engine.dispose()
    assert sorted((cid, i) for i, cid, _ in rows) == sorted(acked.items())
    stored = [i for i, _, _ in rows]
    for client in clients:
        assert client.start is not None
        expected = [str(i) for i in stored if i > StreamId.parse(client.start)]
        assert client.received == expected, f"{client.name}: a gap, a repeat or a reorder"


def _node_of(workers: Workers, pid: int, by_node: dict[str, list[Client]]) -> list[Client]:
    """The clients of the worker with this pid: the node id it logged."""
    found = re.search(rf"\[{pid}\] chatroom.hub.hub: node (\w+) started", workers.server.log())
    assert found, "the worker logs its node id"
    return by_node[found.group(1)]


def _failed(tasks: list[asyncio.Task[None]]) -> bool:
    return any(task.done() for task in tasks)


def _raise_from(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        if task.done():
            task.result()
