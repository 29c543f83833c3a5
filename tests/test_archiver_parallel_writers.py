"""The archiver's parallel SQL writers (`archiver_sql_writers`): a batch shared among
several connections by room, on real Redis and SQL. On MariaDB two writers commit apart
(one is held on a lock while the other commits), and a kill -9 between their commits loses
and duplicates nothing; on either backend, messages, changes, a poison entry and a row SQL
refuses in one batch end exactly as with one writer (SQLite runs one writer whatever the
setting: it takes one write transaction at a time)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.store.tables import messages, rooms
from conftest import Backend
from test_archiver_faults import _archive_env, _run
from test_archiver_support import (
    ALICE,
    Archivers,
    Traffic,
    archived_rows,
    assert_exactly_once,
    create_room,
    dead_letter_rows,
    pending_count,
    wait_for,
)


@asynccontextmanager
async def _room_locked(engine: AsyncEngine, slug: str) -> AsyncIterator[None]:
    """The room's row locked (FOR UPDATE) by another transaction: a writer inserting a
    message of that room waits (the foreign key's check reads its parent row locked),
    until the block ends. MariaDB only."""
    async with engine.connect() as conn:
        await conn.begin()
        await conn.execute(sa.select(rooms.c.id).where(rooms.c.slug == slug).with_for_update())
        try:
            yield
        finally:
            await conn.rollback()


async def _count(engine: AsyncEngine, room_id: int) -> int:
    async with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(messages)
        return int((await conn.execute(query.where(messages.c.room_id == room_id))).scalar_one())


async def _lobby_and_dev_sent_to(
    backend: Backend, redis: Redis, engine: AsyncEngine
) -> tuple[int, int, Traffic]:
    """MariaDB only (skips otherwise): the lobby's and a new room dev's ids, and the
    traffic that sent 60 messages to the lobby and 40 to dev."""
    if backend.name != "mariadb":
        pytest.skip("parallel writers are MySQL/MariaDB's (SQLite runs one)")
    dev = await create_room(engine, "dev")
    lobby = (await _room_ids(engine))["lobby"]
    traffic = Traffic(redis)
    await traffic.send("lobby", 60)
    await traffic.send("dev", 40)
    return lobby, dev, traffic


async def test_two_writers_both_write_one_batch_each_committing_apart(
    backend: Backend, redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    lobby, dev, traffic = await _lobby_and_dev_sent_to(backend, redis, engine)
    archiver = archivers.new(consumer="a1", archiver_sql_writers=2, archiver_batch_size=1000)
    async with _room_locked(engine, "dev"):
        drain = archivers.start(archiver, once=True)
        # One batch of both rooms: lobby's writer commits while dev's transaction is
        # open, waiting on the lock. Had one connection written both, or the two one
        # after the other with dev's first, lobby's rows could not be there now.
        await wait_for(lambda: _count_is(engine, lobby, 60), what="lobby's rows")
        await asyncio.sleep(0.3)
        assert await _count(engine, dev) == 0 and not drain.task.done()
        assert await pending_count(redis, "lobby") == 60  # acknowledged after both commit
    assert await asyncio.wait_for(drain.task, 30) == 100
    await assert_exactly_once(redis, engine, traffic)
    await traffic.close()


async def test_kill_9_between_two_writers_commits_loses_and_duplicates_nothing(
    backend: Backend, redis: Redis, engine: AsyncEngine, tmp_path: Path, python: str
) -> None:
    lobby, dev, traffic = await _lobby_and_dev_sent_to(backend, redis, engine)
    await traffic.change("lobby", 20, seed=3)
    await traffic.change("dev", 10, seed=4)
    env = _archive_env(
        backend,
        tmp_path,
        CHATROOM_FAILPOINT="between_writer_commits",
        CHATROOM_ARCHIVER_SQL_WRITERS="2",
        CHATROOM_ARCHIVER_BATCH_SIZE="1000",
    )
    async with _room_locked(engine, "dev"):
        # Lobby's writer commits, dev's waits on the lock: the process dies between.
        code, err = await _run(python, env, "--once")
        assert code == -signal.SIGKILL, err
        assert await _count(engine, lobby) == 60 and await _count(engine, dev) == 0
    # Nothing was acknowledged: the whole batch is delivered again, lobby's part then
    # being the upsert's no-op, dev's written for the first time.
    assert await pending_count(redis, "lobby") == 80 and await pending_count(redis, "dev") == 50
    env.pop("CHATROOM_FAILPOINT")
    code, err = await _run(python, env, "--once")
    assert code == 0, err
    await assert_exactly_once(redis, engine, traffic)
    assert await dead_letter_rows(engine) == []
    await traffic.close()


async def test_parallel_writers_keep_exactly_once_changes_and_dead_letter_isolation(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    for slug in ("dev", "ops", "doomed"):
        await create_room(engine, slug)
    traffic = Traffic(redis)
    await traffic.send("doomed", 1)
    archiver = archivers.new(consumer="a1", archiver_sql_writers=3, archiver_batch_size=1000)
    assert await archiver.drain() == 1
    # `doomed` leaves SQL while the archiver still knows its id: its rows of the next
    # batch break the foreign key, a deterministic refusal in one writer's share.
    async with engine.begin() as conn:
        await conn.execute(sa.delete(messages))
        await conn.execute(sa.delete(rooms).where(rooms.c.slug == "doomed"))
    del traffic.sent["doomed"], traffic.log["doomed"]
    for room, count in (("lobby", 50), ("dev", 30), ("ops", 20)):
        await traffic.send(room, count)
    await traffic.change("lobby", 30, seed=5)
    await traffic.change("dev", 20, seed=6)
    poison = await redis.xadd(redis_keys.room_stream("ops"), {"event": b'{"v":1,"type":"mess'})
    await traffic.send("ops", 5)
    member = {"v": 1, "type": "message", "room": "doomed", "user": ALICE.as_json()}
    doomed = [
        await redis.xadd(
            redis_keys.room_stream("doomed"),
            {"event": json.dumps({**member, "body": f"hi {n}", "client_id": f"d-{n}"})},
        )
        for n in range(3)
    ]
    await traffic.send("lobby", 5)
    assert await archiver.drain() == 110 + 50
    await assert_exactly_once(redis, engine, traffic)
    # By room and id: entries of two rooms' streams may share an id (the same millisecond).
    rows = await dead_letter_rows(engine)
    letters = {(row["room_slug"], row["stream_id"]): row["reason"] for row in rows}
    expected = [("ops", poison.decode()), *(("doomed", i.decode()) for i in doomed)]
    assert sorted(letters) == sorted(expected)
    assert "not JSON" in letters[("ops", poison.decode())]
    assert all(letters[("doomed", i.decode())].startswith("rejected by SQL") for i in doomed)
    assert [r[0] for r in await archived_rows(engine, "ops")] == sorted(traffic.sent["ops"])
    for room in ("lobby", "dev", "ops", "doomed"):
        assert await pending_count(redis, room) == 0
    await traffic.close()


async def _room_ids(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {r.slug: r.id for r in (await conn.execute(sa.select(rooms.c.slug, rooms.c.id)))}


async def _count_is(engine: AsyncEngine, room_id: int, expected: int) -> bool:
    return await _count(engine, room_id) == expected
