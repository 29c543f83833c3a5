"""The gapless history merge at the stream/SQL seam, on both backends."""

from __future__ import annotations

import asyncio
import random

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.domain.events import Author, MessageEvent, decode_event
from chatroom.domain.stream_ids import ZERO, StreamId
from chatroom.history import History
from chatroom.store.archive_writes import ArchivedMessage, upsert_messages
from chatroom.store.counts import room_ids
from chatroom.store.history_pages import ArchivedPages
from chatroom.streams.writer import StreamWriter
from conftest import MakeWriter

ALICE = Author(7, "alice", "Alice")


async def _append(redis: Redis, count: int, room: str = "lobby") -> list[StreamId]:
    writer = StreamWriter(redis, client_id_ttl_s=3600)
    try:
        results = await asyncio.gather(
            *(
                writer.append(MessageEvent(room, ALICE, f"message {i}", f"c-{room}-{i}"))
                for i in range(count)
            )
        )
    finally:
        await writer.close()
    return [r.id for r in results]


async def _archive_upto(
    redis: Redis, engine: AsyncEngine, room_id: int, upto: StreamId, *, trim: bool
) -> None:
    """Copy stream entries up to `upto` into SQL (committed), then optionally trim them:
    the order the archiver keeps."""
    key = redis_keys.room_stream("lobby")
    entries = await redis.xrange(key, min="-", max=str(upto))
    batch = []
    for entry_id, fields in entries:
        event = decode_event("lobby", fields)
        batch.append(
            ArchivedMessage(room_id, StreamId.parse(entry_id), 7, event.client_id, event.body)
        )
    async with engine.begin() as conn:
        await upsert_messages(conn, batch)
    if trim:
        await redis.xtrim(key, minid=str(upto.next()), approximate=False)


async def walk_back(history: History, room_id: int, limit: int) -> list[StreamId]:
    """Every id, paging backwards from the latest with before=."""
    seen: list[StreamId] = []
    page = await history.page(room_id, "lobby", limit=limit)
    while True:
        seen = [m.id for m in page.messages] + seen
        if not page.has_more:
            return seen
        page = await history.page(room_id, "lobby", before=page.messages[0].id, limit=limit)


async def walk_forward(history: History, room_id: int, limit: int) -> list[StreamId]:
    seen: list[StreamId] = []
    after = StreamId(0, 0)
    while True:
        page = await history.page(room_id, "lobby", after=after, limit=limit)
        seen += [m.id for m in page.messages]
        if not page.has_more:
            return seen
        after = page.messages[-1].id


async def test_pages_cross_the_seam_with_overlap(redis: Redis, engine: AsyncEngine) -> None:
    ids = await _append(redis, 120)
    room_id = (await room_ids(engine))["lobby"]
    # 0..59 archived and trimmed, 60..89 archived but still in the stream (overlap).
    await _archive_upto(redis, engine, room_id, ids[59], trim=True)
    await _archive_upto(redis, engine, room_id, ids[89], trim=False)
    history = History(redis, ArchivedPages(engine))
    for limit in (1, 7, 50, 200):
        assert await walk_back(history, room_id, limit) == ids
        assert await walk_forward(history, room_id, limit) == ids
    latest = await history.page(room_id, "lobby", limit=10)
    assert [m.id for m in latest.messages] == ids[-10:] and latest.has_more
    assert latest.messages[0].body == "message 110"
    assert latest.messages[0].as_json()["created_at"].endswith("Z")


async def test_ids_sort_numerically_not_as_text(redis: Redis, engine: AsyncEngine) -> None:
    key = redis_keys.room_stream("lobby")
    ids = [StreamId(1_700_000_000_000, seq) for seq in range(12)]  # ...-9 before ...-10
    for stream_id in ids:
        event = MessageEvent("lobby", ALICE, f"seq {stream_id.seq}", f"s{stream_id.seq}")
        await redis.xadd(key, {"event": event.encode()}, id=str(stream_id))
    room_id = (await room_ids(engine))["lobby"]
    await _archive_upto(redis, engine, room_id, ids[10], trim=True)
    history = History(redis, ArchivedPages(engine))
    page = await history.page(room_id, "lobby", limit=50)
    assert [m.id for m in page.messages] == ids
    assert [m.body for m in page.messages][9:11] == ["seq 9", "seq 10"]
    assert await walk_back(history, room_id, 3) == ids


async def test_gapless_while_entries_move(redis: Redis, engine: AsyncEngine) -> None:
    """A concurrent task archives and trims in random steps while readers page."""
    ids = await _append(redis, 400)
    room_id = (await room_ids(engine))["lobby"]
    history = History(redis, ArchivedPages(engine))
    rng = random.Random(5)

    async def mover() -> None:
        done = 0
        while done < len(ids) - 1:
            done = min(len(ids) - 1, done + rng.randint(1, 40))
            await _archive_upto(redis, engine, room_id, ids[done], trim=rng.random() < 0.8)
            await asyncio.sleep(0)  # not a wait: lets the readers page between two steps

    moving = asyncio.create_task(mover())
    walks = 0
    while not moving.done() or walks < 2:
        limit = rng.choice([5, 13, 50])
        assert await walk_back(history, room_id, limit) == ids
        assert await walk_forward(history, room_id, limit) == ids
        walks += 1
    await moving
    assert await walk_back(history, room_id, 37) == ids


async def test_undecodable_entries_are_skipped_not_fatal(
    redis: Redis, engine: AsyncEngine, stream_writer: MakeWriter
) -> None:
    key = redis_keys.room_stream("lobby")
    good = await _append(redis, 3)
    await redis.xadd(key, {"event": b"{not json"})
    more = await _append(redis, 0)
    last = (await stream_writer().append(MessageEvent("lobby", ALICE, "after", "after-1"))).id
    room_id = (await room_ids(engine))["lobby"]
    page = await History(redis, ArchivedPages(engine)).page(room_id, "lobby", limit=4)
    assert [m.id for m in page.messages] == [*good, *more, last]
    assert not page.has_more


async def test_empty_room_and_missing_stream(redis: Redis, engine: AsyncEngine) -> None:
    room_id = (await room_ids(engine))["lobby"]
    history = History(redis, ArchivedPages(engine))
    assert (await history.page(room_id, "lobby")).messages == []
    assert (await history.page(room_id, "lobby", after=StreamId(1, 0))).messages == []


# What a subscribe with `since` asks.


async def test_the_stream_last_id_outlives_trimming_but_not_the_stream(
    redis: Redis, engine: AsyncEngine
) -> None:
    history = History(redis, ArchivedPages(engine))
    assert await history.stream_last_id("lobby") is None  # never written to
    ids = await _append(redis, 5)
    assert await history.stream_last_id("lobby") == ids[-1]
    room_id = (await room_ids(engine))["lobby"]
    await _archive_upto(redis, engine, room_id, ids[-1], trim=True)
    assert await redis.xlen(redis_keys.room_stream("lobby")) == 0
    assert await history.stream_last_id("lobby") == ids[-1]  # empty, but it remembers
    await redis.delete(redis_keys.room_stream("lobby"))  # lost with Redis
    assert await history.stream_last_id("lobby") is None


async def test_contains_finds_ids_in_the_stream_and_in_sql_and_no_others(
    redis: Redis, engine: AsyncEngine
) -> None:
    ids = await _append(redis, 6)
    room_id = (await room_ids(engine))["lobby"]
    await _archive_upto(redis, engine, room_id, ids[1], trim=True)  # only in SQL
    await _archive_upto(redis, engine, room_id, ids[3], trim=False)  # in both
    history = History(redis, ArchivedPages(engine))
    for message_id in ids:
        assert await history.contains(room_id, "lobby", message_id)
    for absent in (ZERO, StreamId(ids[0].ms - 1, 0), ids[-1].next()):
        assert not await history.contains(room_id, "lobby", absent)
    await redis.delete(redis_keys.room_stream("lobby"))
    assert await history.contains(room_id, "lobby", ids[0])
    assert not await history.contains(room_id, "lobby", ids[-1])


async def test_the_newest_id_comes_from_sql_when_the_stream_is_gone(
    redis: Redis, engine: AsyncEngine
) -> None:
    room_id = (await room_ids(engine))["lobby"]
    history = History(redis, ArchivedPages(engine))
    assert await history.newest_id(room_id, "lobby") == ZERO  # no message at all
    ids = await _append(redis, 4)
    assert await history.newest_id(room_id, "lobby") == ids[-1]
    await _archive_upto(redis, engine, room_id, ids[2], trim=True)
    await redis.delete(redis_keys.room_stream("lobby"))  # the last one was never archived
    assert await history.newest_id(room_id, "lobby") == ids[2]
