"""What a failed batch write means (outage, busy, refused), and that only the entry SQL
itself refuses is dead-lettered: an entry over max_allowed_packet, a row a trigger
refuses, while a deadlock is only tried again. Real SQL on both backends where it can."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.archiver.batching import Delivery
from chatroom.archiver.failpoints import Failpoints
from chatroom.archiver.retries import Dependency
from chatroom.archiver.sql_writes import BatchWriter, Failure, Row, classify
from chatroom.domain.events import MessageEvent
from chatroom.domain.stream_ids import StreamId
from chatroom.outages import SQL_DOWN
from chatroom.store.archive_writes import (
    DEAD_LETTER_RAW_MAX,
    ArchivedMessage,
    create_writes_engine,
)
from chatroom.store.counts import room_ids
from conftest import Backend
from test_archiver_support import (
    ALICE,
    Archivers,
    Traffic,
    archived_rows,
    dead_letter_rows,
    pending_count,
)


def _driver_error(code: int, text: str) -> OperationalError:
    return OperationalError("INSERT ...", {}, Exception(code, text))


def test_what_a_failed_write_means_from_the_error_alone() -> None:
    assert classify(DataError("INSERT ...", {}, Exception(1406, "too long"))) is Failure.REFUSED
    assert classify(_driver_error(1213, "Deadlock found")) is Failure.BUSY
    assert classify(_driver_error(1205, "Lock wait timeout exceeded")) is Failure.BUSY
    assert classify(OperationalError("x", {}, Exception("database is locked"))) is Failure.OUTAGE
    # Lost connection: SQL down, or SQL dropped us for this statement. A probe tells.
    assert classify(_driver_error(2013, "Lost connection")) is Failure.UNKNOWN
    assert classify(ConnectionRefusedError()) is Failure.UNKNOWN


OVER_PACKET = 17 * 1024 * 1024  # MariaDB's default max_allowed_packet is 16 MiB


async def test_an_entry_over_max_allowed_packet_is_dead_lettered_and_archiving_goes_on(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    traffic = Traffic(redis)
    before = await traffic.send("lobby", 3)
    raw = b"o" * OVER_PACKET
    huge = await redis.xadd(redis_keys.room_stream("lobby"), {"event": raw})
    after = await traffic.send("lobby", 3)
    # Before: its dead letter was one INSERT over the packet limit; MariaDB dropped the
    # connection (2013), taken for an outage, retried forever: archiving stopped.
    drained = await asyncio.wait_for(archivers.new(consumer="a1").drain(), 60)
    assert drained == 6
    assert [r[0] for r in await archived_rows(engine, "lobby")] == [*before, *after]
    [letter] = await dead_letter_rows(engine)
    assert letter["stream_id"] == huge.decode()
    assert bytes(letter["raw"]) == raw[:DEAD_LETTER_RAW_MAX]
    assert letter["reason"].startswith("invalid event: not JSON")
    assert (
        f"entry of {OVER_PACKET} bytes, sha256 {hashlib.sha256(raw).hexdigest()}"
        in (letter["reason"])
    )
    assert await pending_count(redis, "lobby") == 0
    await traffic.close()


REFUSED_BODY = "the row a trigger refuses"


async def _refusing_trigger(engine: AsyncEngine, backend: Backend, *, errno: int) -> None:
    """A trigger that refuses one body: SQL answers, but never takes that row."""
    async with engine.begin() as conn:
        await conn.execute(sa.text("DROP TRIGGER IF EXISTS refuse_one_body"))
        if backend.name == "mariadb":
            # SIGNAL's own error (1644) is neither IntegrityError nor DataError: the driver
            # makes it an OperationalError, the class of a lost connection.
            await conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse_one_body BEFORE INSERT ON messages FOR EACH ROW "
                    f"IF NEW.body = '{REFUSED_BODY}' THEN "
                    f"SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = {errno}, "
                    "MESSAGE_TEXT = 'refused by the test trigger'; END IF"
                )
            )
        else:
            await conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse_one_body BEFORE INSERT ON messages "
                    f"WHEN NEW.body = '{REFUSED_BODY}' "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
                )
            )


async def _drop_trigger(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text("DROP TRIGGER IF EXISTS refuse_one_body"))


async def test_a_row_sql_refuses_deterministically_is_isolated_not_taken_for_an_outage(
    backend: Backend, redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    await _refusing_trigger(engine, backend, errno=1644)
    traffic = Traffic(redis)
    try:
        before = await traffic.send("lobby", 20)
        refused = await traffic.writer.append(MessageEvent("lobby", ALICE, REFUSED_BODY, "r-1"))
        after = await traffic.send("lobby", 20)
        # Before: an OperationalError was an outage, waited out forever.
        drained = await asyncio.wait_for(archivers.new(consumer="a1").drain(), 60)
    finally:
        await _drop_trigger(engine)
    assert drained == 40
    assert [r[0] for r in await archived_rows(engine, "lobby")] == [*before, *after]
    [letter] = await dead_letter_rows(engine)
    assert letter["stream_id"] == str(refused.id)
    assert letter["reason"].startswith("rejected by SQL: ")
    assert "refused by the test trigger" in letter["reason"]
    assert await pending_count(redis, "lobby") == 0
    await traffic.close()


async def test_a_deadlock_is_tried_again_never_a_dead_letter(
    backend: Backend, redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    if backend.name != "mariadb":
        pytest.skip("deadlocks and lock wait timeouts are MySQL/MariaDB's")
    async with engine.begin() as conn:
        # Attempts are counted in a table a rollback does not undo (Aria, not InnoDB).
        await conn.execute(sa.text("DROP TABLE IF EXISTS deadlock_attempts"))
        await conn.execute(sa.text("CREATE TABLE deadlock_attempts (n INT) ENGINE=Aria"))
        await conn.execute(sa.text("INSERT INTO deadlock_attempts VALUES (0)"))
        await conn.execute(sa.text("DROP TRIGGER IF EXISTS refuse_one_body"))
        # More failed attempts than a lone refused row gets: a deadlock is no verdict.
        await conn.execute(
            sa.text(
                "CREATE TRIGGER refuse_one_body BEFORE INSERT ON messages FOR EACH ROW "
                f"IF NEW.body = '{REFUSED_BODY}' THEN "
                "UPDATE deadlock_attempts SET n = n + 1; "
                "IF (SELECT n FROM deadlock_attempts) <= 5 THEN "
                "SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, "
                "MESSAGE_TEXT = 'Deadlock found when trying to get lock'; END IF; END IF"
            )
        )
    traffic = Traffic(redis)
    try:
        traffic.sent["lobby"] = {}
        event = MessageEvent("lobby", ALICE, REFUSED_BODY, "d-1")
        appended = await traffic.writer.append(event)
        traffic.sent["lobby"][appended.id] = (event.client_id, event.body)
        drained = await asyncio.wait_for(archivers.new(consumer="a1").drain(), 60)
        async with engine.connect() as conn:
            attempts = (await conn.execute(sa.text("SELECT n FROM deadlock_attempts"))).scalar()
    finally:
        await _drop_trigger(engine)
        async with engine.begin() as conn:
            await conn.execute(sa.text("DROP TABLE IF EXISTS deadlock_attempts"))
    assert drained == 1 and attempts == 6
    assert [r[0] for r in await archived_rows(engine, "lobby")] == [appended.id]
    assert await dead_letter_rows(engine) == []
    await traffic.close()


def _batch(room_id: int, first: int, count: int) -> list[Row]:
    """`count` message rows of the lobby, stream ids from `first` on."""
    rows: list[Row] = []
    for n in range(first, first + count):
        entry_id = StreamId(1_000 + n, 0)
        message = ArchivedMessage(room_id, entry_id, ALICE.id, f"kept-{n}", f"message {n}")
        rows.append((Delivery("lobby", entry_id, {b"event": b"-"}), message))
    return rows


def _writer(writes: AsyncEngine) -> BatchWriter:
    return BatchWriter(writes, Dependency("sql", "SQL", down=SQL_DOWN), Failpoints())


def _writes_engine(backend: Backend, engine: AsyncEngine) -> AsyncEngine:
    if backend.name == "mariadb":
        return create_writes_engine(backend.database_url)
    return engine


async def test_a_writer_keeps_its_connection_across_batches(
    backend: Backend, engine: AsyncEngine
) -> None:
    """One connection taken from the pool for many batches: no pre-ping before each
    transaction and no reset after it (two round trips fewer per batch)."""
    writes = _writes_engine(backend, engine)
    room_id = (await room_ids(engine))["lobby"]
    checkouts: list[object] = []
    sa.event.listen(writes.sync_engine, "checkout", lambda *args: checkouts.append(args))
    writer = _writer(writes)
    try:
        for first in range(0, 50, 10):
            assert await writer.write(_batch(room_id, first, 10), []) == []
        assert len(checkouts) == 1
    finally:
        await writer.close()
        if writes is not engine:
            await writes.dispose()
    assert len(await archived_rows(engine, "lobby")) == 50


async def test_a_kept_connection_the_server_dropped_is_replaced_not_taken_for_a_refusal(
    backend: Backend, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """The server drops the writer's kept connection between two batches (a restart, a
    KILL, wait_timeout): the next batch is written whole on a fresh connection, as the
    pool's pre-ping did before, not halved nor dead-lettered nor waited out."""
    if backend.name != "mariadb":
        pytest.skip("SQLite has no server to drop a connection")
    caplog.set_level(logging.INFO, logger="chatroom.archiver")
    writes = _writes_engine(backend, engine)
    room_id = (await room_ids(engine))["lobby"]
    writer = _writer(writes)
    try:
        assert await writer.write(_batch(room_id, 0, 10), []) == []
        async with engine.connect() as conn:
            mine = (await conn.execute(sa.text("SELECT CONNECTION_ID()"))).scalar_one()
            database = make_url(backend.database_url).database
            others = (
                await conn.execute(
                    sa.text(
                        "SELECT id FROM information_schema.processlist "
                        "WHERE db = :db AND id <> :mine"
                    ),
                    {"db": database, "mine": mine},
                )
            ).scalars()
            for other in list(others):
                with contextlib.suppress(DBAPIError):  # gone meanwhile
                    await conn.execute(sa.text(f"KILL CONNECTION {int(other)}"))
        assert await writer.write(_batch(room_id, 10, 10), []) == []
    finally:
        await writer.close()
        await writes.dispose()
    stored = [row[0] for row in await archived_rows(engine, "lobby")]
    assert stored == [StreamId(1_000 + n, 0) for n in range(20)]
    assert await dead_letter_rows(engine) == []
    messages = [r.getMessage() for r in caplog.records]
    assert any("kept SQL connection failed" in m for m in messages)
    assert not any("unreachable" in m or "refused" in m for m in messages)
