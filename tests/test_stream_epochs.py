"""Where a room's stream stands, and its epochs, on real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from chatroom import redis_keys
from chatroom.domain.stream_ids import ZERO, StreamId
from chatroom.streams.epochs import StreamEpochs
from conftest import Backend

KEY = redis_keys.room_stream("lobby")


async def _add(redis: Redis, count: int) -> list[StreamId]:
    return [StreamId.parse(await redis.xadd(KEY, {"event": b"{}"})) for _ in range(count)]


async def test_a_standing_counts_what_the_stream_ever_had_and_what_was_trimmed(
    redis: Redis,
) -> None:
    epochs = StreamEpochs(redis)
    missing = await epochs.standing("lobby")
    assert (missing.exists, missing.last_generated, missing.entries_added) == (False, ZERO, 0)
    ids = await _add(redis, 5)
    await redis.xtrim(KEY, minid=str(ids[3]), approximate=False)
    standing = await epochs.standing("lobby", count_after=ids[3])
    assert standing.exists and standing.last_generated == ids[-1]
    assert (standing.entries_added, standing.length, standing.trimmed) == (5, 2, 3)
    assert standing.first_id == ids[3] and standing.entries_after == 1
    assert standing.epoch is None  # nobody began one: entries added behind the writer's back


async def test_nodes_that_find_a_loss_at_once_begin_one_epoch(redis: Redis) -> None:
    epochs = StreamEpochs(redis)
    ids = await _add(redis, 3)
    first = await epochs.begin("lobby", seen=None)
    assert (first.kept, first.archived, first.floor) == (ids[-1], ZERO, ids[-1])
    assert not first.lost(ids[-1]) and first.archived_only() is None
    # Several nodes saw `first` and prove the stream went back, all at once.
    again = await asyncio.gather(
        *(epochs.begin("lobby", seen=first, evidence=ids[-1].next()) for _ in range(5))
    )
    assert len({epoch.id for epoch in again}) == 1 and again[0].id != first.id
    assert (await epochs.standing("lobby")).epoch == again[0]


async def test_an_epoch_raises_the_last_id_above_what_was_archived_and_delivered(
    redis: Redis,
) -> None:
    archived = StreamId(9_000_000_000_000, 4)  # SQL's newest: far above the Redis clock

    async def newest(_slug: str) -> StreamId:
        return archived

    epochs = StreamEpochs(redis, newest)
    delivered = StreamId(9_000_000_000_000, 7)  # a node delivered this one, then Redis lost it
    epoch = await epochs.begin("lobby", seen=None, evidence=delivered)
    assert (epoch.kept, epoch.archived, epoch.floor) == (ZERO, archived, delivered)
    assert epoch.archived_only() == (ZERO, delivered.next())
    assert epoch.lost(delivered) and not epoch.lost(archived)
    standing = await epochs.standing("lobby")  # the stream exists again, empty, raised
    assert (standing.exists, standing.length, standing.last_generated) == (True, 0, delivered)
    assert StreamId.parse(await redis.xadd(KEY, {"event": b"{}"})) > delivered
    # A node that delivered still more in the earlier epoch raises the floor further.
    beyond = StreamId(9_000_000_000_001, 0)
    assert await epochs.raise_floor("lobby", epoch, beyond)
    assert not await epochs.raise_floor("lobby", epoch, delivered)  # already above
    assert StreamId.parse(await redis.xadd(KEY, {"event": b"{}"})) > beyond


async def test_standings_survive_a_script_flush(backend: Backend, redis: Redis) -> None:
    if backend.name != "embedded":
        pytest.skip("SCRIPT FLUSH is server-wide: only on the tests' own Valkey")
    epochs = StreamEpochs(redis)
    await _add(redis, 1)
    assert (await epochs.standing("lobby")).entries_added == 1
    await redis.script_flush()
    assert (await epochs.standing("lobby")).entries_added == 1
