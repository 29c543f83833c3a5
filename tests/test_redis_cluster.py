"""The product on a real 3-master Redis Cluster (tests/redis_cluster.py): two app nodes
and archivers as processes of their own, rooms spread over every shard.

- Clients on both nodes, in rooms on all three shards, see one ordered, gapless sequence
  per room (the same on both nodes), and SQL ends up with every message, once.
- An archiver killed (-9) right after it read entries: the other takes them over after
  `archiver_claim_idle_ms` and archives them all.
- A master killed (-9) and restarted from its AOF (`appendfsync always`, the fsync ack
  mode on a Redis without WAITAOF): every acknowledged message is still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.crc import key_slot

from chat_servers import ChatServer, running_server
from chatroom import redis_keys
from chatroom.store import migrate
from chatroom.store.database import create_engine
from conftest import BACKENDS, MARIADB_URL, Backend, _reset_mariadb
from redis_cluster import RedisCluster, running_cluster, tools_missing
from test_archiver_support import archived_rows
from waiting import wait_until
from ws_clients import ChatSocket, open_socket

pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(tools_missing() is not None, reason=str(tools_missing())),
]

SETTINGS = {
    "send_rate_per_s": "100000",
    "send_burst": "100000",
    "frame_rate_per_s": "100000",
    "frame_burst": "100000",
}
CLAIM_IDLE_MS = 1500
PER_CLIENT = 30  # messages per client and room


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture(params=BACKENDS)
async def cluster_backend(
    request: pytest.FixtureRequest, cluster: RedisCluster, tmp_path: Path
) -> Backend:
    """The cluster, emptied, and a migrated SQL database with the lobby."""
    cluster.wait_healthy()
    cluster.flush()
    if request.param == "mariadb":
        await _reset_mariadb(MARIADB_URL)
        database_url = MARIADB_URL
    else:
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'chatroom.sqlite3'}"
        engine = create_engine(database_url)
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()
    return Backend(request.param, cluster.url, database_url)


def slugs_on_every_shard(cluster: RedisCluster) -> list[str]:
    """One room slug per master, by the slot its slot group's tag hashes to."""
    ranges = []
    for line in cluster.cli(cluster.ports[0], "CLUSTER", "NODES").splitlines():
        fields = line.split()
        if "master" in fields[2]:
            for part in fields[8:]:
                low, _, high = part.partition("-")
                ranges.append((int(low), int(high or low), fields[1]))
    found: dict[str, str] = {}
    redis_keys.use_cluster_layout(True)
    try:
        for i in range(1000):
            slug = f"room-{i}"
            slot = key_slot(redis_keys.room_stream(slug).encode())
            owner = next(node for low, high, node in ranges if low <= slot <= high)
            found.setdefault(owner, slug)
    finally:
        redis_keys.use_cluster_layout(False)
    assert len(found) == 3, found
    return sorted(found.values())


async def archiver(backend: Backend, folder: Path, **extra: str) -> subprocess.Popen[bytes]:
    env = backend.env()
    env.update(
        {
            "CHATROOM_DATA_DIR": str(folder / "archiver-data"),
            "CHATROOM_ARCHIVER_BATCH_SIZE": "50",
            "CHATROOM_ARCHIVER_FLUSH_MS": "20",
            "CHATROOM_ARCHIVER_BLOCK_MS": "200",
            "CHATROOM_ARCHIVER_CLAIM_IDLE_MS": str(CLAIM_IDLE_MS),
            "CHATROOM_LOG_LEVEL": "INFO",
            **extra,
        }
    )
    command = [sys.executable, "-m", "chatroom", "archive"]
    with (folder / f"archiver-{len(list(folder.glob('archiver-*.log')))}.log").open("wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


async def user(
    closing: AsyncExitStack, node: ChatServer, name: str, rooms: list[str], *, create: bool
) -> httpx.AsyncClient:
    client = await closing.enter_async_context(node.client())
    answer = await client.post(
        "/api/register", json={"username": name, "password": "correct horse battery"}
    )
    assert answer.status_code == 201, answer.text
    answer = await client.post(
        "/api/login", json={"username": name, "password": "correct horse battery"}
    )
    assert answer.status_code == 200, answer.text
    for slug in rooms:
        if create:
            answer = await client.post("/api/rooms", json={"slug": slug, "title": slug})
            assert answer.status_code == 201, answer.text
        else:
            answer = await client.post(f"/api/rooms/{slug}/join")
            assert answer.status_code in (200, 204), answer.text
    return client


async def socket_to(
    closing: AsyncExitStack, node: ChatServer, client: httpx.AsyncClient
) -> ChatSocket:
    socket = await open_socket(node, client)
    closing.push_async_callback(_close_quietly, socket)
    return socket


async def _close_quietly(socket: ChatSocket) -> None:
    with contextlib.suppress(Exception):
        await socket.close()


async def chat(socket: ChatSocket, name: str, rooms: list[str]) -> None:
    for i in range(PER_CLIENT):
        for slug in rooms:
            frame = {
                "type": "send",
                "room": slug,
                "body": f"{name} {i}",
                "client_id": f"{name}-{i}",
            }
            await socket.send(frame)
        await asyncio.sleep(0.005)


async def collect(socket: ChatSocket, total: int) -> dict[str, list[tuple[str, str]]]:
    """(id, client_id) of every message frame, by room, in arrival order."""
    seen: dict[str, list[tuple[str, str]]] = {}
    for _ in range(total):
        frame = await socket.next("message", timeout=30)
        seen.setdefault(frame["room"], []).append((frame["id"], frame["client_id"]))
    return seen


@pytest.fixture
async def two_nodes(cluster_backend: Backend, tmp_path: Path) -> AsyncIterator[list[ChatServer]]:
    async with (
        running_server(cluster_backend, tmp_path, settings=SETTINGS) as first,
        running_server(cluster_backend, tmp_path, settings=SETTINGS) as second,
    ):
        yield [first, second]


async def test_two_nodes_two_archivers_rooms_on_every_shard(
    cluster: RedisCluster,
    cluster_backend: Backend,
    two_nodes: list[ChatServer],
    tmp_path: Path,
    closing: AsyncExitStack,
) -> None:
    rooms = slugs_on_every_shard(cluster)
    archivers = [await archiver(cluster_backend, tmp_path) for _ in range(2)]
    try:
        alice = await user(closing, two_nodes[0], "alice", rooms, create=True)
        bob = await user(closing, two_nodes[1], "bob", rooms, create=False)
        sockets = [
            await socket_to(closing, two_nodes[0], alice),
            await socket_to(closing, two_nodes[1], bob),
        ]
        for socket in sockets:
            for slug in rooms:
                await socket.subscribe(slug)
        total = 2 * PER_CLIENT * len(rooms)
        readers = [asyncio.create_task(collect(s, total)) for s in sockets]
        await asyncio.gather(chat(sockets[0], "alice", rooms), chat(sockets[1], "bob", rooms))
        on_first, on_second = await asyncio.gather(*readers)
        assert on_first == on_second  # one sequence per room, the same on both nodes
        for slug in rooms:
            ids = [message_id for message_id, _ in on_first[slug]]
            assert ids == sorted(ids, key=_order) and len(set(ids)) == len(ids)
            sent = {f"{name}-{i}" for name in ("alice", "bob") for i in range(PER_CLIENT)}
            assert {client_id for _, client_id in on_first[slug]} == sent
        engine = create_engine(cluster_backend.database_url)
        try:
            for slug in rooms:

                async def complete(slug: str = slug) -> bool:
                    return len(await archived_rows(engine, slug)) == 2 * PER_CLIENT

                await wait_until(complete, 60, what=f"room {slug} archived")
                stored = [(str(row[0]), row[1]) for row in await archived_rows(engine, slug)]
                assert stored == on_first[slug]
        finally:
            await engine.dispose()
    finally:
        for process in archivers:
            stop(process)


def _order(message_id: str) -> tuple[int, int]:
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq)


async def _pending(cluster: RedisCluster, slug: str) -> int:
    redis_keys.use_cluster_layout(True)
    try:
        key = redis_keys.room_stream(slug)
    finally:
        redis_keys.use_cluster_layout(False)
    client = ClusterClient(startup_nodes=[ClusterNode("127.0.0.1", p) for p in cluster.ports])
    try:
        summary = await client.xpending(key, redis_keys.ARCHIVER_GROUP)
        return int(summary["pending"])
    finally:
        await client.aclose()


# The claim is Redis's (XAUTOCLAIM per group): on the first SQL backend only, like the node
# tests below; tests/test_archiver_fleet.py kills an archiver process on both backends.
@pytest.mark.parametrize("cluster_backend", BACKENDS[:1], indirect=True)
async def test_a_killed_archivers_entries_are_archived_by_the_other(
    cluster: RedisCluster,
    cluster_backend: Backend,
    two_nodes: list[ChatServer],
    tmp_path: Path,
    closing: AsyncExitStack,
) -> None:
    rooms = slugs_on_every_shard(cluster)
    alice = await user(closing, two_nodes[0], "alice", rooms, create=True)
    socket = await socket_to(closing, two_nodes[0], alice)
    for slug in rooms:
        await socket.subscribe(slug)
    reader = asyncio.create_task(collect(socket, PER_CLIENT * len(rooms)))
    await chat(socket, "alice", rooms)
    await reader
    # The first archiver reads entries and dies (kill -9, its failpoint) before storing them.
    doomed = await archiver(cluster_backend, tmp_path, CHATROOM_FAILPOINT="after_read")
    await asyncio.to_thread(doomed.wait, 60)
    assert doomed.returncode == -signal.SIGKILL
    assert sum([await _pending(cluster, slug) for slug in rooms]) > 0
    started = time.monotonic()
    survivor = await archiver(cluster_backend, tmp_path)
    engine = create_engine(cluster_backend.database_url)
    try:

        async def complete() -> bool:
            counts = [len(await archived_rows(engine, slug)) for slug in rooms]
            return counts == [PER_CLIENT] * len(rooms)

        await wait_until(complete, 60, what="every room archived by the survivor")
        taken_s = time.monotonic() - started
        print(f"taken over and archived in {taken_s:.1f} s (claim_idle {CLAIM_IDLE_MS} ms)")
        for slug in rooms:
            assert await _pending(cluster, slug) == 0
    finally:
        await engine.dispose()
        stop(survivor)


async def send_acked(socket: ChatSocket, slug: str, client_ids: list[str]) -> dict[str, str]:
    """Sends, then waits for each ack: client_id -> acknowledged id."""
    for client_id in client_ids:
        frame = {"type": "send", "room": slug, "body": client_id, "client_id": client_id}
        await socket.send(frame)
    acks = {}
    while len(acks) < len(client_ids):
        ack = await socket.next("ack", timeout=30)
        acks[ack["client_id"]] = ack["id"]
    return acks


# Their subject is Redis and the hub, not SQL: on the first SQL backend only, to keep the
# file under two minutes (the archiving tests above run on both).
@pytest.mark.parametrize("cluster_backend", BACKENDS[:1], indirect=True)
async def test_a_killed_nodes_clients_resume_on_the_other_with_since(
    cluster: RedisCluster,
    cluster_backend: Backend,
    two_nodes: list[ChatServer],
    closing: AsyncExitStack,
) -> None:
    rooms = slugs_on_every_shard(cluster)
    alice = await user(closing, two_nodes[0], "alice", rooms, create=True)
    bob = await user(closing, two_nodes[1], "bob", rooms, create=False)
    doomed, living = (
        await socket_to(closing, two_nodes[0], alice),
        await socket_to(closing, two_nodes[1], bob),
    )
    for socket in (doomed, living):
        for slug in rooms:
            await socket.subscribe(slug)
    seen_by_alice: dict[str, list[str]] = {slug: [] for slug in rooms}
    sent: dict[str, list[str]] = {slug: [] for slug in rooms}
    for slug in rooms:
        acks = await send_acked(living, slug, [f"{slug}-a{i}" for i in range(10)])
        sent[slug] += acks.values()
    for _ in range(10 * len(rooms)):
        frame = await doomed.next("message", timeout=30)
        seen_by_alice[frame["room"]].append(frame["id"])
    os.kill(two_nodes[0].process.pid, signal.SIGKILL)  # kill -9 of alice's node
    two_nodes[0].process.wait()
    for slug in rooms:  # sent while alice is away
        acks = await send_acked(living, slug, [f"{slug}-b{i}" for i in range(10)])
        sent[slug] += acks.values()
    # Her client reconnects to the other node and resumes each room from its last id.
    alice_again = await closing.enter_async_context(two_nodes[1].client(cookies=alice.cookies))
    resumed = await socket_to(closing, two_nodes[1], alice_again)
    for slug in rooms:
        await resumed.subscribe(slug, since=seen_by_alice[slug][-1])
    for slug in rooms:  # and live again
        acks = await send_acked(living, slug, [f"{slug}-c{i}" for i in range(10)])
        sent[slug] += acks.values()
    for _ in range(20 * len(rooms)):
        frame = await resumed.next("message", timeout=30)
        seen_by_alice[frame["room"]].append(frame["id"])
    for slug in rooms:
        assert seen_by_alice[slug] == sent[slug]  # ordered, no gap, no repeat


@pytest.mark.parametrize("cluster_backend", BACKENDS[:1], indirect=True)
async def test_a_master_restarted_from_its_aof_keeps_every_acknowledged_message(
    cluster: RedisCluster, cluster_backend: Backend, tmp_path: Path
) -> None:
    rooms = slugs_on_every_shard(cluster)
    settings = {**SETTINGS, "ack_durability": "fsync"}
    server = running_server(cluster_backend, tmp_path, settings=settings)
    async with server as node, AsyncExitStack() as closing:  # clients close first
        alice = await user(closing, node, "alice", rooms, create=True)
        socket = await socket_to(closing, node, alice)
        acked = {
            slug: list(
                (await send_acked(socket, slug, [f"{slug}-{i}" for i in range(20)])).values()
            )
            for slug in rooms
        }
        # kill -9 of the master of the first room, then the same node back from its AOF.
        port = next(p for p in cluster.ports if _holds(cluster, p, rooms[0]))
        cluster.kill(port)
        cluster.start(port)
        cluster.wait_healthy()
        for slug in rooms:

            async def stored(slug: str = slug) -> list[str] | None:
                answer = await alice.get(f"/api/rooms/{slug}/messages", params={"limit": 100})
                if answer.status_code != 200:
                    return None
                return [m["id"] for m in answer.json()["messages"]]

            ids = await wait_until(stored, 30, what=f"room {slug} answers")
            assert ids == acked[slug]


def _holds(cluster: RedisCluster, port: int, slug: str) -> bool:
    redis_keys.use_cluster_layout(True)
    try:
        slot = key_slot(redis_keys.room_stream(slug).encode())
    finally:
        redis_keys.use_cluster_layout(False)
    for line in cluster.cli(port, "CLUSTER", "NODES").splitlines():
        fields = line.split()
        if "myself" in fields[2]:
            for part in fields[8:]:
                low, _, high = part.partition("-")
                if int(low) <= slot <= int(high or low):
                    return True
    return False
