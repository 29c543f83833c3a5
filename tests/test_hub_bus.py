"""The per-node reader of the room streams, on real Redis."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest
from redis.asyncio import Redis

from chatroom import redis_keys
from chatroom.domain.events import Message
from chatroom.domain.stream_ids import StreamId
from chatroom.hub.bus import BLOCK_MS, StreamBus
from chatroom.hub.bus_groups import READ_GROUPS, GroupedStreamBus, read_group
from chatroom.hub.room_cursor import RoomCursor, missing_range, went_back
from chatroom.redis_client import connect
from chatroom.streams.entries import Entry
from chatroom.streams.epochs import COUNT_CAP, Epoch, Standing, StreamEpochs
from conftest import Backend
from redis_proxy import RedisProxy
from waiting import wait_until


class Received:
    """A `RoomFeed` that keeps what the bus hands it (no SQL behind it)."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[Entry]]] = []
        self.resyncs: list[str] = []
        self.changed = asyncio.Event()

    def entries(self, room: str, entries: list[Entry]) -> None:
        self.batches.append((room, entries))
        self.changed.set()

    def missed(self, room: str, messages: list[Message]) -> None:
        raise AssertionError(f"nothing was archived, yet {room} missed {len(messages)}")

    def lost(self, room: str) -> None:
        self.resyncs.append(room)

    async def archived(
        self, room: str, after: StreamId, before: StreamId, limit: int
    ) -> list[Message]:
        return []

    def ids(self, room: str) -> list[StreamId]:
        return [i for r, entries in self.batches if r == room for i, _ in entries]

    async def wait_for(self, room: str, count: int, timeout: float = 5.0) -> list[StreamId]:
        async with asyncio.timeout(timeout):
            while len(self.ids(room)) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.ids(room)


async def _add(redis: Redis, room: str, count: int) -> list[StreamId]:
    key = redis_keys.room_stream(room)
    return [StreamId.parse(await redis.xadd(key, {"event": b"{}"})) for _ in range(count)]


async def test_rooms_are_read_in_id_order_and_a_new_room_is_picked_up_at_once(
    backend: Backend, redis: Redis
) -> None:
    blocking = connect(backend.redis_url, blocking=True)
    received = Received()
    epochs = StreamEpochs(redis)
    bus = StreamBus(redis, blocking, "test-node", received, epochs)
    await bus.start()
    try:
        await bus.watch("lobby", await epochs.standing("lobby"))
        lobby = await _add(redis, "lobby", 5)
        assert await received.wait_for("lobby", 5) == lobby
        await asyncio.sleep(0.1)  # the reader is now blocked in XREAD
        started = time.monotonic()
        ids = await _add(redis, "music", 1)
        await bus.watch("music", await epochs.standing("music"))  # from after the first
        ids += await _add(redis, "music", 1)
        assert await received.wait_for("music", 1) == ids[1:]
        assert time.monotonic() - started < BLOCK_MS / 1000 / 2  # woken, not timed out
        bus.unwatch("lobby")
        await _add(redis, "lobby", 3)
        more = await _add(redis, "music", 1)
        assert await received.wait_for("music", 2) == ids[1:] + more
        assert received.ids("lobby") == lobby  # unwatched: nothing more
    finally:
        await bus.stop()
        await blocking.aclose()
    assert not await redis.exists(redis_keys.node_wakeup("test-node"))


async def test_a_hung_read_is_dropped_and_resumes_from_the_last_id_delivered(
    backend: Backend, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    received = Received()
    async with RedisProxy(backend.redis_url) as proxy:
        blocking = connect(proxy.url, blocking=True)
        epochs = StreamEpochs(redis)
        # A read unanswered 1 s past its BLOCK is hung: a healthy one answered late by a
        # loaded machine's stalls is not (past 0.3 s, one was, and was logged as an outage).
        bus = StreamBus(redis, blocking, "test-node", received, epochs, block_ms=200, hang_s=1.0)
        await bus.start()
        try:
            await bus.watch("lobby", await epochs.standing("lobby"))
            before = await _add(redis, "lobby", 2)
            assert await received.wait_for("lobby", 2) == before
            # Half-open: the reader's connection, and any new one, answers nothing. Every
            # read now hangs past its BLOCK and is dropped; the outage is logged once.
            proxy.black_hole = True
            during = await _add(redis, "lobby", 3)
            # Hung reads, each dropped and tried again on a fresh connection (one every
            # 1.2 s or so: counted, not slept for).
            await wait_until(lambda: proxy.connections >= 3, 20, what="three hung reads")
            assert received.ids("lobby") == before
            proxy.black_hole = False  # the network heals: new connections work
            after = await _add(redis, "lobby", 2)
            # No gap and no duplicate: the next read starts after the last id delivered.
            assert await received.wait_for("lobby", 7, timeout=10) == before + during + after
            await asyncio.sleep(0.3)
            assert received.ids("lobby") == before + during + after
            assert received.resyncs == []
        finally:
            await bus.stop()
            await blocking.aclose()
    lines = [r.getMessage() for r in caplog.records if r.name == "chatroom.hub.bus"]
    assert len(lines) == 2, lines  # once when it stopped, once when it works again
    assert "is unreachable" in lines[0] and "is back after" in lines[1]


async def test_each_group_of_rooms_has_its_reader_and_a_held_one_holds_up_no_other(
    backend: Backend, redis: Redis
) -> None:
    """A message wakes the reader of its room's group only (a read names a sixteenth of
    the rooms, not every watched one): a reader held in its read delays its own rooms,
    never another group's, and its rooms then go on in order, with no gap."""
    rooms = [f"room-{n}" for n in range(64)]
    groups = {read_group(room) for room in rooms}
    assert len(groups) == READ_GROUPS  # 64 rooms land in every group
    held_room = rooms[0]
    free_room = next(room for room in rooms if read_group(room) != read_group(held_room))
    blocking = connect(backend.redis_url, blocking=True)
    received = Received()
    epochs = StreamEpochs(redis)
    bus = GroupedStreamBus(redis, blocking, "test-node", received, epochs)
    await bus.start()
    held = await bus.reader(read_group(held_room))
    real_read, release = held._read, asyncio.Event()

    async def read_when_released() -> Any:
        reply = await real_read()
        await release.wait()
        return reply

    held._read = read_when_released  # type: ignore[method-assign]  # before its first read
    try:
        for room in rooms:
            await bus.watch(room, await epochs.standing(room))
        waiting = await _add(redis, held_room, 3)  # its reader has it, and holds it
        for _ in range(3):
            free = await _add(redis, free_room, 1)
            assert (await received.wait_for(free_room, len(received.ids(free_room)) + 1))[
                -1:
            ] == free
        assert received.ids(held_room) == []
        release.set()
        more = await _add(redis, held_room, 2)
        assert await received.wait_for(held_room, 5) == waiting + more
        assert received.resyncs == []
    finally:
        await bus.stop()
        await blocking.aclose()
    for group in groups:
        assert not await redis.exists(redis_keys.node_wakeup("test-node", group))


# What a node decides from where a stream stands (pure).


def _standing(
    added: int, length: int, first: int, last: int, epoch: Epoch | None = None
) -> Standing:
    return Standing(True, StreamId(last, 0), added, length, StreamId(first, 0), -1, epoch)


EPOCH = Epoch("e1", StreamId(0, 0), StreamId(0, 0), StreamId(0, 0))


def _read(*ms: int) -> list[Entry]:
    return [(StreamId(m, 0), {}) for m in ms]


def test_a_node_that_kept_up_fills_nothing() -> None:
    cursor = RoomCursor(StreamId(10, 0), seen=10, epoch="e1")
    # Ten entries ever, five trimmed (all at or below the cursor), one new read.
    assert missing_range(cursor, _standing(11, 6, 6, 11), EPOCH, _read(11)) == (
        StreamId(11, 0),
        False,
    )


def test_entries_trimmed_after_the_cursor_before_the_read_are_a_gap() -> None:
    cursor = RoomCursor(StreamId(10, 0), seen=10, epoch="e1")
    # 40 entries ever; the stream kept 38-40: 11-37 were trimmed before the node read.
    upper, fill = missing_range(cursor, _standing(40, 3, 38, 40), EPOCH, _read(38, 39, 40))
    assert (upper, fill) == (StreamId(38, 0), True)


def test_a_read_answered_before_the_trim_is_no_gap_by_itself() -> None:
    cursor = RoomCursor(StreamId(10, 0), seen=10, epoch="e1")
    # The read (11, 12) came before a trim that removed 1-11: only the read's own entry
    # was trimmed after the cursor.
    assert missing_range(cursor, _standing(12, 1, 12, 12), EPOCH, _read(11, 12)) == (
        StreamId(11, 0),
        False,
    )


def test_a_read_trimmed_away_since_comes_from_sql_with_what_followed() -> None:
    cursor = RoomCursor(StreamId(10, 0), seen=10, epoch="e1")
    # The node stalled holding the answer (11): the stream now keeps only 30-31.
    upper, fill = missing_range(cursor, _standing(31, 2, 30, 31), EPOCH, _read(11))
    assert (upper, fill) == (StreamId(30, 0), True)


def test_crossing_a_range_redis_lost_after_archiving_it_is_a_gap() -> None:
    lost = Epoch("e2", kept=StreamId(12, 0), archived=StreamId(15, 0), floor=StreamId(15, 0))
    cursor = RoomCursor(StreamId(12, 0), seen=None, epoch="e2")
    upper, fill = missing_range(cursor, _standing(14, 14, 1, 20), lost, _read(20))
    assert (upper, fill) == (StreamId(20, 0), True)


def test_a_stream_behind_what_the_node_saw_went_back() -> None:
    cursor = RoomCursor(StreamId(10, 0), seen=10, epoch="e1")
    assert went_back(cursor, _standing(8, 8, 1, 8))  # the last id is below the cursor
    assert went_back(cursor, _standing(9, 9, 1, 30))  # new ids, but fewer entries ever
    assert not went_back(cursor, _standing(12, 12, 1, 12))


def test_a_stream_that_went_back_under_new_entries_went_back() -> None:
    cursor = RoomCursor(StreamId(10, 0), seen=10, epoch="e1")
    # Redis kept 1-6 and then took 20-25: as many entries ever as the node saw, and a last
    # id past its cursor. The count up to the last entry read says it: 6 + 6, not 10 + 6.
    lost = replace(_standing(12, 12, 1, 25), entries_after=0)
    assert went_back(cursor, lost, _read(20, 21, 22, 23, 24, 25), StreamId(25, 0))
    # The same read of an intact stream: 10 + 6 up to 25.
    intact = replace(_standing(16, 16, 1, 25), entries_after=0)
    assert not went_back(cursor, intact, _read(20, 21, 22, 23, 24, 25), StreamId(25, 0))
    # Without entries read, the count after the cursor says it too.
    after_cursor = replace(_standing(12, 12, 1, 25), entries_after=6)
    assert went_back(cursor, after_cursor, [], StreamId(10, 0))
    # A count after another id, or capped, says nothing.
    assert not went_back(cursor, lost, _read(20, 21, 22, 23, 24, 25), StreamId(24, 0))
    capped = replace(_standing(12, 12, 1, 25), entries_after=COUNT_CAP)
    assert not went_back(cursor, capped, [], StreamId(10, 0))
