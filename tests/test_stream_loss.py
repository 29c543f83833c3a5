"""Redis losing the tail of a room's stream (a restart from an older AOF, the unsynced
second of a power cut, a failover to a replica that was behind), on both backends: history
still shows what SQL holds, new messages never reuse an archived id, and whoever saw a lost
message or asks to resume from one gets `resync`, never a silent gap."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.domain.events import Author, MessageEvent, decode_event
from chatroom.domain.stream_ids import StreamId
from chatroom.history import History
from chatroom.hub.bus import StreamBus
from chatroom.hub.bus_groups import read_group
from chatroom.store.archive_writes import ArchivedMessage, upsert_messages
from chatroom.store.counts import room_ids
from chatroom.store.history_pages import ArchivedPages
from chatroom.streams.writer import StreamWriter
from conftest import HubFactory
from fake_transport import FakeTransport, messages, send, subscribe
from test_archiver_support import Archivers, archived_rows
from test_history import walk_back, walk_forward
from waiting import wait_until

ALICE = Author(1, "alice", "Alice")
BOB = Author(2, "bob", "Bob")
FAST = {
    "send_rate_per_s": 10_000,
    "send_burst": 10_000,
    "frame_rate_per_s": 10_000,
    "frame_burst": 10_000,
}


async def _archive(redis: Redis, engine: AsyncEngine, upto: StreamId) -> None:
    """What the archiver did before the loss: the stream's entries up to `upto` in SQL."""
    room_id = (await room_ids(engine))["lobby"]
    entries = await redis.xrange(redis_keys.room_stream("lobby"), min="-", max=str(upto))
    batch = []
    for raw_id, fields in entries:
        event = decode_event("lobby", fields)
        stream_id = StreamId.parse(raw_id)
        batch.append(
            ArchivedMessage(room_id, stream_id, event.author.id, event.client_id, event.body)
        )
    async with engine.begin() as conn:
        await upsert_messages(conn, batch)


async def _lose_tail(redis: Redis, kept: StreamId, *, keys_too: bool) -> None:
    """Redis comes back with the stream as it was when `kept` was its last entry. With
    `keys_too`, the room's other keys are lost as well (the room began after the AOF
    Redis restarted from was written, or the whole dataset is gone)."""
    key = redis_keys.room_stream("lobby")
    survivors = await redis.xrange(key, min="-", max=str(kept))
    await redis.delete(key)
    if keys_too:
        await redis.delete(redis_keys.room_epoch("lobby"))
    for raw_id, fields in survivors:
        await redis.xadd(key, fields, id=raw_id)


async def test_history_shows_what_sql_holds_above_the_first_entry_of_a_recreated_stream(
    redis: Redis, engine: AsyncEngine
) -> None:
    history = History(redis, ArchivedPages(engine))
    writer = StreamWriter(redis, client_id_ttl_s=60, epochs=history.epochs)
    try:
        room_id = (await room_ids(engine))["lobby"]
        sent = [
            (await writer.append(MessageEvent("lobby", ALICE, f"m{i}", f"m{i}"))).id
            for i in range(10)
        ]
        await _archive(redis, engine, sent[7])
        await _lose_tail(redis, sent[4], keys_too=True)
        # Before anyone writes again: history reads 5-7 from SQL, above the stream's end.
        assert await walk_back(history, room_id, 3) == sent[:8]
        assert await walk_forward(history, room_id, 3) == sent[:8]
        later = [
            (await writer.append(MessageEvent("lobby", ALICE, f"n{i}", f"n{i}"))).id
            for i in range(3)
        ]
        # 8 and 9 were never archived: lost. The rest reads once each, in order, both ways.
        expected = sent[:8] + later
        assert await walk_back(history, room_id, 3) == expected
        assert await walk_forward(history, room_id, 3) == expected
        latest = await history.page(room_id, "lobby", limit=5)
        assert [m.id for m in latest.messages] == expected[-5:] and latest.has_more
        assert [m.body for m in latest.messages] == ["m6", "m7", "n0", "n1", "n2"]
    finally:
        await writer.close()


async def test_new_messages_after_a_loss_take_ids_above_everything_archived(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    # SQL holds messages archived under a server whose clock ran an hour ahead; Redis then
    # lost the room (a failover to a replica with the right clock, say).
    room_id = (await room_ids(engine))["lobby"]
    ahead = int(datetime.now(UTC).timestamp() * 1000) + 3_600_000
    archived = [StreamId(ahead, seq) for seq in range(3)]
    async with engine.begin() as conn:
        await upsert_messages(
            conn,
            [ArchivedMessage(room_id, i, BOB.id, f"old-{i.seq}", "before") for i in archived],
        )
    history = History(redis, ArchivedPages(engine))
    writer = StreamWriter(redis, client_id_ttl_s=60, epochs=history.epochs)
    try:
        new = (await writer.append(MessageEvent("lobby", ALICE, "after the loss", "n1"))).id
    finally:
        await writer.close()
    assert new > archived[-1]  # from the clock alone it would be an hour below
    # The archiver stores it as the new message it is, not as a replay of an old one.
    await asyncio.wait_for(archivers.start(archivers.new(), once=True).task, 30)
    rows = {row[0]: row for row in await archived_rows(engine, "lobby")}
    assert rows[new][1:] == ("n1", "after the loss")
    assert sorted(rows) == [*archived, new]


def _ids(transport: FakeTransport) -> list[str]:
    return [f["id"] for f in map(json.loads, transport.sent) if f["type"] == "message"]


async def test_who_saw_or_resumes_from_a_lost_message_gets_resync_and_the_rest_no_gap(
    make_hub: HubFactory, redis: Redis, engine: AsyncEngine
) -> None:
    node, other = await make_hub(**FAST), await make_hub(**FAST)
    alice, bob = node.connect(ALICE), other.connect(BOB)
    await subscribe(bob)
    await send(bob, "the room's first message", "first")
    await subscribe(alice)
    sent = [await send(bob, f"m{i}", f"m{i}") for i in range(10)]
    assert [m["id"] for m in await messages(alice, 10)] == sent  # alice's node saw all 10
    ids = [StreamId.parse(i) for i in sent]
    await _archive(redis, engine, ids[7])
    # Redis restarts from an AOF one moment old: the room's epoch record survives in it.
    await _lose_tail(redis, ids[4], keys_too=False)

    # The next message: alice's node finds the stream went back past what it delivered.
    after = await send(bob, "after the loss", "n1")
    assert await alice.next("resync") == {"type": "resync", "room": "lobby"}
    assert (await alice.next("message"))["id"] == after
    assert StreamId.parse(after) > ids[9]  # above all alice saw, 8 and 9 included
    assert node.hub.stats.resyncs == 1
    assert _ids(alice) == [*sent, after]  # in order, each once

    # Resuming from a lost message (8 and 9 were never archived): resync.
    for lost in (sent[8], sent[9]):
        carol = node.connect(Author(3, "carol", "Carol"))
        await subscribe(carol, since=lost)
        assert (await carol.next())["type"] == "resync"
    # Resuming from an archived one above the recreated stream's end: the rest, no gap.
    dave = node.connect(Author(4, "dave", "Dave"))
    await subscribe(dave, since=sent[5])
    assert [m["id"] for m in await messages(dave, 3)] == [sent[6], sent[7], after]
    assert "resync" not in [json.loads(f)["type"] for f in dave.sent]


class _ReplyLost:
    """Makes a node's stream reader lose the reply of its next read, as when Redis dies
    with the answer on the wire: the reader waits until `resume` is set, then fails."""

    def __init__(self, bus: StreamBus) -> None:
        self.bus = bus
        self.real = self.bus._read
        self.armed = False
        self.resume = asyncio.Event()
        self.bus._read = self._read

    async def _read(self) -> Any:
        reply = await self.real()
        if not self.armed:
            return reply
        self.armed = False
        await self.resume.wait()
        raise RedisConnectionError("Connection closed by server.")


async def _lagging_node_loses(
    make_hub: HubFactory, redis: Redis, engine: AsyncEngine, *, archived: int, kept: int = 4
) -> tuple[Any, FakeTransport, FakeTransport, _ReplyLost, list[str]]:
    """Alice's node delivered m0..m6; m7 was appended but the reply that held it never
    reached her node; m0..m(archived) are archived; Redis then came back with the stream as
    it was at m(kept)."""
    node, other = await make_hub(**FAST), await make_hub(**FAST)
    # Before alice's node reads: every read of the room goes through it.
    lag = _ReplyLost(await node.hub._bus.reader(read_group("lobby")))
    alice, bob = node.connect(ALICE), other.connect(BOB)  # bob's node reads no stream
    await send(bob, "the room's first message", "first")
    await subscribe(alice)
    sent = [await send(bob, f"m{i}", f"m{i}") for i in range(7)]
    assert [m["id"] for m in await messages(alice, 7)] == sent
    lag.armed = True
    sent.append(await send(bob, "m7", "m7"))  # read by alice's node, the reply lost
    ids = [StreamId.parse(i) for i in sent]
    await _archive(redis, engine, ids[archived])
    await _lose_tail(redis, ids[kept], keys_too=False)
    return node, alice, bob, lag, sent


async def _delivered_through(alice: FakeTransport, last: str) -> list[str]:
    await wait_until(lambda: _ids(alice)[-1:] == [last], what=f"{last} delivered")
    return _ids(alice)


def _resynced(transport: FakeTransport) -> bool:
    return "resync" in [json.loads(f)["type"] for f in transport.sent]


async def test_a_node_behind_a_lost_archived_message_delivers_it_when_new_ones_came_first(
    make_hub: HubFactory, redis: Redis, engine: AsyncEngine
) -> None:
    # More new messages came after the loss than were lost: the stream's count of entries
    # and its last id alone no longer say that it went back under the node's cursor.
    _, alice, bob, lag, sent = await _lagging_node_loses(make_hub, redis, engine, archived=7)
    after = [await send(bob, f"n{i}", f"n{i}") for i in range(5)]
    lag.resume.set()
    assert await _delivered_through(alice, after[-1]) == [*sent, *after]  # m7 from SQL
    assert not _resynced(alice)


async def test_a_node_that_lost_its_link_delivers_an_archived_message_redis_lost_unseen(
    make_hub: HubFactory, redis: Redis, engine: AsyncEngine
) -> None:
    # Redis lost m7 only, which no node had delivered: what the stream kept ends at the
    # node's cursor, its counts match the node's, and no epoch begins. Only SQL knows m7
    # (issue 9's 30-minute campaign: `gaps` at a power loss, one message to 14 clients).
    _, alice, bob, lag, sent = await _lagging_node_loses(
        make_hub, redis, engine, archived=7, kept=6
    )
    after = [await send(bob, f"n{i}", f"n{i}") for i in range(3)]
    lag.resume.set()
    assert await _delivered_through(alice, after[-1]) == [*sent, *after]  # m7 from SQL
    assert not _resynced(alice)


async def test_a_node_behind_a_lost_message_archived_after_the_epoch_began_delivers_it(
    make_hub: HubFactory, redis: Redis, engine: AsyncEngine
) -> None:
    # The epoch begins (SQL's newest is m6 then, its floor below m7) before the
    # archiver's commit of m7, read before the loss, lands.
    node, alice, bob, lag, sent = await _lagging_node_loses(make_hub, redis, engine, archived=6)
    ids = [StreamId.parse(i) for i in sent]
    epochs = History(redis, ArchivedPages(engine)).epochs
    standing = await epochs.standing("lobby")
    epoch = await epochs.begin("lobby", seen=standing.epoch, evidence=ids[6])
    assert epoch.floor < ids[7]
    room_id = (await room_ids(engine))["lobby"]
    async with engine.begin() as conn:  # the late commit
        await upsert_messages(conn, [ArchivedMessage(room_id, ids[7], BOB.id, "m7", "m7")])
    lag.resume.set()
    after = [await send(bob, f"n{i}", f"n{i}") for i in range(2)]
    assert await _delivered_through(alice, after[-1]) == [*sent, *after]  # m7 from SQL
    assert not _resynced(alice)
    # A client resuming from m6 gets m7 from SQL too, and the history shows it.
    dave = node.connect(Author(4, "dave", "Dave"))
    await subscribe(dave, since=sent[6])
    assert [m["id"] for m in await messages(dave, 3)] == [sent[7], *after]
    assert not _resynced(dave)
    walked = await walk_forward(History(redis, ArchivedPages(engine)), room_id, 3)
    assert walked[-len(sent) - len(after) :] == [StreamId.parse(i) for i in [*sent, *after]]
