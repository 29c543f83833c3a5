"""No reader skips ids (invariant 10), on both backends: a node whose stream reader
stalled while the archiver trimmed past it, and a room whose stream Redis lost."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.domain.events import Author
from chatroom.history import History
from chatroom.hub.subscription import RoomRef
from chatroom.store.counts import room_ids
from chatroom.store.database import create_engine
from chatroom.store.history_pages import ArchivedPages
from chatroom.store.tables import rooms
from conftest import Backend, HubFactory
from fake_transport import FakeTransport, messages, send, subscribe
from redis_proxy import RedisProxy
from test_archiver_support import Archivers, archived_rows
from waiting import wait_until

ALICE = Author(1, "alice", "Alice")
BOB = Author(2, "bob", "Bob")
HOT_WINDOW = 2
FAST = {
    "send_rate_per_s": 10_000,
    "send_burst": 10_000,
    "frame_rate_per_s": 10_000,
    "frame_burst": 10_000,
}


async def _stream_trimmed_to_hot_window(redis: Redis, engine: AsyncEngine, total: int) -> bool:
    archived = len(await archived_rows(engine, "lobby"))
    return archived == total + 1 and await redis.xlen(redis_keys.room_stream("lobby")) == HOT_WINDOW


def _message_ids(transport: FakeTransport) -> list[str]:
    frames = [json.loads(frame) for frame in transport.sent]
    return [frame["id"] for frame in frames if frame["type"] == "message"]


def _kinds(transport: FakeTransport) -> list[str]:
    return [json.loads(frame)["type"] for frame in transport.sent]


async def _stall_while_trimmed(
    make_hub: HubFactory,
    archivers: Archivers,
    redis: Redis,
    engine: AsyncEngine,
    proxy: RedisProxy,
    **stalled_node: Any,
) -> tuple[FakeTransport, list[str]]:
    """Alice's node reads the streams through `proxy`, which stalls while Bob's node sends
    35 messages and the archiver archives them and trims the stream to its hot window.
    Returns Alice's socket and every id sent, once the stall is over."""
    archivers.start(archivers.new(archiver_hot_window=HOT_WINDOW))
    stalled = await make_hub(blocking_url=proxy.url, **FAST, **stalled_node)
    other = await make_hub(**FAST)
    alice, bob = stalled.connect(ALICE), other.connect(BOB)
    await subscribe(bob)
    await send(bob, "the room's first message", "first")  # the stream exists: subscribing
    await subscribe(alice)  # without `since` reads no SQL
    ids = [await send(bob, f"before {i}", f"b-{i}") for i in range(5)]
    assert [m["id"] for m in await messages(alice, 5)] == ids

    proxy.paused = True  # alice's node hears nothing from the streams now
    ids += [await send(bob, f"during {i}", f"d-{i}") for i in range(35)]
    await wait_until(
        lambda: _stream_trimmed_to_hot_window(redis, engine, len(ids)),
        what="the archiver archived all and trimmed to the hot window",
    )
    proxy.paused = False
    return alice, ids


async def test_a_node_whose_reader_stalled_while_the_archiver_trimmed_misses_nothing(
    backend: Backend,
    make_hub: HubFactory,
    archivers: Archivers,
    redis: Redis,
    engine: AsyncEngine,
) -> None:
    async with RedisProxy(backend.redis_url) as proxy:
        alice, ids = await _stall_while_trimmed(make_hub, archivers, redis, engine, proxy)
        # The stalled read returns what Redis had for it then; the next read finds only
        # the hot window left: the 33 or so trimmed meanwhile come from SQL, in order.
        got = [m["id"] for m in await messages(alice, len(ids) - 5)]
        assert got == ids[5:]
        assert _message_ids(alice) == ids  # every id once, in order
        assert "resync" not in _kinds(alice)


async def test_a_gap_that_sql_cannot_fill_is_a_resync_never_a_silent_skip(
    backend: Backend,
    make_hub: HubFactory,
    archivers: Archivers,
    redis: Redis,
    engine: AsyncEngine,
) -> None:
    dead_sql = create_engine("mysql+asyncmy://root@127.0.0.1:1/nowhere")  # refused
    try:
        async with RedisProxy(backend.redis_url) as proxy:
            alice, ids = await _stall_while_trimmed(
                make_hub,
                archivers,
                redis,
                engine,
                proxy,
                make_history=lambda r, _archive: History(r, ArchivedPages(dead_sql)),
            )
            await alice.next("resync", timeout=30)
            # The live sequence goes on with the hot window the stream kept.
            await wait_until(
                lambda: _message_ids(alice)[-HOT_WINDOW:] == ids[-HOT_WINDOW:],
                what="the stream's hot window delivered after the gap",
            )
            received = _message_ids(alice)
            assert received == [i for i in ids if i in set(received)]  # in order, each once
            assert len(received) < len(ids)  # SQL down: the trimmed ones could not come
            # Wherever the sequence skips ids, a resync came first: never a silent gap.
            sequence = [json.loads(frame) for frame in alice.sent]
            delivered = [f for f in sequence if f["type"] in ("message", "resync")]
            for before, after in itertools.pairwise(delivered):
                if before["type"] == after["type"] == "message":
                    skipped = ids.index(after["id"]) - ids.index(before["id"]) - 1
                    assert skipped == 0, f"{skipped} skipped without a resync"
    finally:
        await dead_sql.dispose()


class BlackHole:
    """A TCP server that accepts connections and never answers (SQL behind a partition):
    a client's connect waits until its own timeout. Counts the connections tried."""

    def __init__(self) -> None:
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._held: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> BlackHole:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._held:
            writer.close()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"mysql+asyncmy://root@127.0.0.1:{port}/nowhere"

    async def _hold(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._held.append(writer)


async def test_rooms_that_sql_cannot_fill_resync_without_each_waiting_out_the_outage(
    make_hub: HubFactory,
    archivers: Archivers,
    redis: Redis,
    engine: AsyncEngine,
    backend: Backend,
) -> None:
    """A node stalled while the archiver trimmed two rooms past it, and SQL hangs (no
    answer at all). The first room's fill waits out its timeout; the second must not wait
    again (its fan-out, and every other room's on the node, would stall once per room):
    both rooms get `resync`, and SQL was tried once."""
    ids = await room_ids(engine)
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(rooms).values(
                slug="second", title="Second", is_private=False, created_at=sa.func.now()
            )
        )
    refs = {slug: RoomRef(i, slug, False) for slug, i in (await room_ids(engine)).items()}
    assert "lobby" in ids

    async def both(_user: Author, slug: str) -> RoomRef | None:
        return refs.get(slug)

    archivers.start(archivers.new(archiver_hot_window=HOT_WINDOW))
    async with BlackHole() as hole, RedisProxy(backend.redis_url) as proxy:
        hung_sql = create_engine(hole.url)
        try:
            stalled = await make_hub(
                both,
                blocking_url=proxy.url,
                make_history=lambda r, _archive: History(r, ArchivedPages(hung_sql)),
                **FAST,
            )
            other = await make_hub(both, **FAST)
            alice, bob = stalled.connect(ALICE), other.connect(BOB)
            for room in ("lobby", "second"):
                await subscribe(bob, room)
                await send(bob, f"the first of {room}", f"first-{room}", room)
                await subscribe(alice, room)
            proxy.paused = True
            for room in ("lobby", "second"):
                for i in range(10):
                    await send(bob, f"during {i}", f"d-{room}-{i}", room)
            await wait_until(
                lambda: _both_trimmed(redis, engine),
                what="both rooms archived and trimmed to the hot window",
            )
            tried_before = hole.accepted
            proxy.paused = False
            resynced = set()
            while resynced != {"lobby", "second"}:
                resynced.add((await alice.next("resync", timeout=30))["room"])
            assert hole.accepted - tried_before == 1
        finally:
            await hung_sql.dispose()


async def _both_trimmed(redis: Redis, engine: AsyncEngine) -> bool:
    for room in ("lobby", "second"):
        if len(await archived_rows(engine, room)) != 11:
            return False
        if await redis.xlen(redis_keys.room_stream(room)) != HOT_WINDOW:
            return False
    return True
