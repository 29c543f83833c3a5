"""The stream writer on real Redis/Valkey: ids, idempotent resend, batching under load."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from chatroom import redis_keys
from chatroom.domain.events import Author, MessageEvent, decode_event
from chatroom.domain.stream_ids import StreamId
from chatroom.redis_client import connect
from conftest import MakeWriter

ALICE = Author(1, "alice", "Alice")
BOB = Author(2, "bob", "Bob")


async def test_append_returns_the_stream_id(redis: Redis, stream_writer: MakeWriter) -> None:
    writer = stream_writer()
    appended = await writer.append(MessageEvent("lobby", ALICE, "hi", "c1"))
    assert not appended.duplicate
    [(entry_id, fields)] = await redis.xrange(redis_keys.room_stream("lobby"))
    assert StreamId.parse(entry_id) == appended.id
    assert decode_event("lobby", fields).body == "hi"
    assert await redis.smembers(redis_keys.ROOMS_WITH_STREAMS) == {b"lobby"}


async def test_resend_with_the_same_client_id_stores_once(
    redis: Redis, stream_writer: MakeWriter
) -> None:
    writer = stream_writer()
    first = await writer.append(MessageEvent("lobby", ALICE, "once", "same"))
    again = await asyncio.gather(
        *(writer.append(MessageEvent("lobby", ALICE, "once", "same")) for _ in range(5))
    )
    # The same client_id from another sender, or in another room, is another message.
    other_sender = await writer.append(MessageEvent("lobby", BOB, "mine", "same"))
    other_room = await writer.append(MessageEvent("general", ALICE, "there", "same"))
    assert {a.id for a in again} == {first.id} and all(a.duplicate for a in again)
    assert not other_sender.duplicate and other_sender.id != first.id
    assert not other_room.duplicate
    assert await redis.xlen(redis_keys.room_stream("lobby")) == 2


async def test_concurrent_appends_keep_per_sender_order(
    redis: Redis, stream_writer: MakeWriter
) -> None:
    writer = stream_writer(max_batch=64)

    async def sender(author: Author) -> list[StreamId]:
        ids = []
        for i in range(300):
            ids.append((await writer.append(MessageEvent("lobby", author, f"{i}", f"{i}"))).id)
        return ids

    per_sender = await asyncio.gather(sender(ALICE), sender(BOB))
    burst = await asyncio.gather(
        *(writer.append(MessageEvent("lobby", ALICE, "b", f"burst-{i}")) for i in range(1000))
    )
    for ids in per_sender:
        assert ids == sorted(ids)
    assert len({a.id for a in burst}) == 1000
    assert await redis.xlen(redis_keys.room_stream("lobby")) == 1600


async def test_redis_errors_reach_the_caller(stream_writer: MakeWriter) -> None:
    dead = connect("redis://127.0.0.1:1/0")  # nothing listens on port 1
    writer = stream_writer(dead, retry_s=0)
    with pytest.raises(Exception, match=r"(?i)connect"):
        await writer.append(MessageEvent("lobby", ALICE, "lost?", "c1"))
    await dead.aclose()


async def test_a_room_is_registered_again_after_redis_lost_its_data(
    redis: Redis, stream_writer: MakeWriter
) -> None:
    writer = stream_writer()
    await writer.append(MessageEvent("lobby", ALICE, "before", "c1"))
    await redis.flushdb()  # what a restart without persistence looks like
    await writer.append(MessageEvent("lobby", ALICE, "after", "c2"))
    assert await redis.smembers(redis_keys.ROOMS_WITH_STREAMS) == {b"lobby"}


async def test_appends_go_on_after_the_script_cache_is_flushed(
    redis: Redis, stream_writer: MakeWriter
) -> None:
    writer = stream_writer()
    first = await writer.append(MessageEvent("lobby", ALICE, "one", "c1"))
    await redis.script_flush()  # what a Redis restart does to the script cache
    burst = await asyncio.gather(
        *(writer.append(MessageEvent("lobby", ALICE, f"{i}", f"after-{i}")) for i in range(20))
    )
    again = await writer.append(MessageEvent("lobby", ALICE, "one", "c1"))
    assert again.id == first.id and again.duplicate
    assert sorted(a.id for a in burst) == [a.id for a in burst]
    assert await redis.xlen(redis_keys.room_stream("lobby")) == 21


async def test_a_batch_over_several_rooms_gives_each_append_its_own_result(
    redis: Redis, stream_writer: MakeWriter
) -> None:
    writer = stream_writer()
    first = await writer.append(MessageEvent("lobby", ALICE, "first", "dup"))
    # One batch: three rooms (two without an epoch yet), and a resend in the middle.
    events = [
        MessageEvent(room, author, f"{room} {i}", f"{room}-{i}")
        for i in range(5)
        for room in ("lobby", "general", "random")
        for author in (ALICE, BOB)
    ]
    events.insert(7, MessageEvent("lobby", ALICE, "first", "dup"))
    results = await asyncio.gather(*(writer.append(event) for event in events))
    for event, appended in zip(events, results, strict=True):
        [(_, fields)] = await redis.xrange(
            redis_keys.room_stream(event.room), str(appended.id), str(appended.id)
        )
        stored = decode_event(event.room, fields)
        assert (stored.client_id, stored.author, stored.body) == (
            event.client_id,
            event.author,
            event.body,
        )
    assert results[7].id == first.id and results[7].duplicate
    assert sum(a.duplicate for a in results) == 1
    for room in ("lobby", "general", "random"):  # each room in the order submitted
        new = [
            a.id for e, a in zip(events, results, strict=True) if e.room == room and not a.duplicate
        ]
        assert new == sorted(new) and len(new) == 10
