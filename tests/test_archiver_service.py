"""The archiver loop on real Redis and SQL (both backends): exactly once, exact bytes,
new rooms, dead letters, safe trimming, competing and adopting consumers, schedules."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY, generate_latest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.archiver.batching import Delivery
from chatroom.archiver.failpoints import Failpoints
from chatroom.archiver.pipeline import ArchivedHook
from chatroom.archiver.reading import GroupReader
from chatroom.archiver.redis_streams import GroupStreams
from chatroom.domain.events import MessageEvent
from chatroom.domain.stream_ids import StreamId
from chatroom.history import History
from chatroom.status import archiver_progress, collect_status
from chatroom.store.archive_writes import (
    ArchivedMessage,
    Duplicate,
    upsert_messages,
    write_batch,
)
from chatroom.store.counts import room_ids
from chatroom.store.history_pages import ArchivedPages
from chatroom.store.tables import messages, rooms
from conftest import Backend
from test_archiver_support import (
    ALICE,
    Archivers,
    Traffic,
    archived_rows,
    archived_total,
    assert_exactly_once,
    create_room,
    dead_letter_rows,
    pending_count,
    wait_for,
)


def _metric(name: str, room: str) -> float:
    return REGISTRY.get_sample_value(name, {"room": room}) or 0.0


async def test_the_archiver_s_metrics_never_name_a_private_room(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    await create_room(engine, "secret-plans", private=True)
    await create_room(engine, "open-plans")
    traffic = Traffic(redis)
    await traffic.send("secret-plans", 20)
    await traffic.send("open-plans", 5)
    private_before = _metric("chatroom_archiver_archived_rows_total", "private")
    archiver = archivers.new(consumer="labels")
    assert await archiver.drain() == 25
    assert _metric("chatroom_archiver_archived_rows_total", "private") - private_before == 20
    assert _metric("chatroom_archiver_archived_rows_total", "open-plans") >= 5
    assert b"secret-plans" not in generate_latest(REGISTRY)


async def test_drain_archives_every_message_once_with_exact_bytes(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    await create_room(engine, "dev")
    traffic = Traffic(redis)
    await traffic.send("lobby", 450)
    await traffic.send("dev", 130)
    before = _metric("chatroom_archiver_archived_rows_total", "dev")
    archiver = archivers.new(consumer="a1")
    assert await archiver.drain() == 580
    await assert_exactly_once(redis, engine, traffic)
    assert _metric("chatroom_archiver_archived_rows_total", "dev") - before == 130
    # A second run finds nothing, and a replay of the same rows is a no-op.
    assert await archiver.drain() == 0
    room_id = (await room_ids(engine))["lobby"]
    first = next(iter(traffic.sent["lobby"]))
    client_id, body = traffic.sent["lobby"][first]
    async with engine.begin() as conn:
        await upsert_messages(conn, [ArchivedMessage(room_id, first, 7, client_id, body)])
    await assert_exactly_once(redis, engine, traffic)
    # Status: nothing left, and the rows/s of the last minute include this drain.
    found = (await collect_status(redis, engine)).as_json()
    assert found["rooms"]["lobby"]["backlog"] == 0
    assert found["rooms"]["lobby"]["archived"] == 450
    assert found["total"]["archived"] == 580
    assert "archived_per_s" in found["total"] and "missing" in found["total"]
    rate, missing = await archiver_progress(redis, "dev", int(time.time() * 1000) + 1500)
    assert rate == round(130 / 60, 2) and missing == 0
    await traffic.close()


async def test_entries_written_before_the_group_existed(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    traffic = Traffic(redis)
    await traffic.send("lobby", 120)
    groups: Any = await redis.xinfo_groups(redis_keys.room_stream("lobby"))
    assert groups == []  # nobody created a group by hand
    assert await archivers.new().drain() == 120
    await assert_exactly_once(redis, engine, traffic)
    await traffic.close()


async def test_continuous_run_finds_new_rooms_and_stops_cleanly(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    traffic = Traffic(redis)
    running = archivers.start(archivers.new())
    await traffic.send("lobby", 50)
    await wait_for(lambda: _has(engine, 50), what="lobby archived")
    await create_room(engine, "late-room")
    await traffic.send("late-room", 40)
    await wait_for(lambda: _has(engine, 90), what="the new room archived")
    await running.stop(timeout=10)
    await assert_exactly_once(redis, engine, traffic)
    # A clean stop leaves the group: nothing of ours was pending.
    consumers: Any = await redis.xinfo_consumers(redis_keys.room_stream("lobby"), "archiver")
    assert consumers == []
    await traffic.close()


async def _has(engine: AsyncEngine, count: int) -> bool:
    return await archived_total(engine) >= count


async def test_bad_entries_end_in_dead_letters_and_the_rest_goes_on(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    traffic = Traffic(redis)
    key = redis_keys.room_stream("lobby")
    good = {"v": 1, "type": "message", "room": "lobby", "user": ALICE.as_json(), "client_id": "x"}
    bad: dict[str, bytes] = {
        "truncated JSON": b'{"v":1,"type":"mess',
        "null": b"null",
        "wrong types": json.dumps({**good, "user": {**ALICE.as_json(), "id": "7"}}).encode(),
        "non-UTF-8 bytes": b'{"v":1,"body":"\xff\xfe"}',
        "oversized body": json.dumps({**good, "body": "x" * 20_000}).encode(),
    }
    await traffic.send("lobby", 5)
    for raw in bad.values():
        await redis.xadd(key, {"event": raw})
    await redis.xadd(key, {"something": b"else"})
    # A room with a stream but no row in SQL.
    await redis.sadd(redis_keys.ROOMS_WITH_STREAMS, "ghost-room")
    ghost = await redis.xadd(redis_keys.room_stream("ghost-room"), {"event": b"{}"})
    await traffic.send("lobby", 5)
    # Two pending entries whose data is deleted: one of ours, one of a dead consumer.
    await redis.xgroup_create(key, "archiver", id="0", mkstream=True)
    lost_ours = await redis.xadd(key, {"event": b"gone"})
    await redis.xreadgroup("archiver", "a1", {key: ">"}, count=100)
    lost_theirs = await redis.xadd(key, {"event": b"gone too"})
    await redis.xreadgroup("archiver", "dead-one", {key: ">"}, count=1)
    await redis.xdel(key, lost_ours, lost_theirs)
    await traffic.send("lobby", 5)
    await asyncio.sleep(0.15)  # past the claim idle time

    assert await archivers.new(consumer="a1").drain() == 15
    await assert_exactly_once(redis, engine, traffic)
    letters = await dead_letter_rows(engine)
    reasons = {row["stream_id"]: row["reason"] for row in letters}
    assert len(letters) == len(bad) + 4
    by_raw = {bytes(row["raw"]): row["reason"] for row in letters}
    assert "not JSON" in by_raw[bad["truncated JSON"]]
    assert "must be a JSON object" in by_raw[bad["null"]]
    assert "user.id" in by_raw[bad["wrong types"]]
    assert "not UTF-8" in by_raw[bad["non-UTF-8 bytes"]]
    assert "over 16000" in by_raw[bad["oversized body"]]
    assert "no 'event' field" in by_raw[b"something=else"]
    assert "unknown room 'ghost-room'" in reasons[ghost.decode()]
    for lost in (lost_ours, lost_theirs):
        assert "deleted from the stream" in reasons[lost.decode()]
    assert await pending_count(redis, "lobby") == 0
    assert await pending_count(redis, "ghost-room") == 0
    found = (await collect_status(redis, engine)).as_json()
    assert found["rooms"]["lobby"]["missing"] == 2
    assert found["rooms"]["lobby"]["dead_letters"] == len(bad) + 3
    await traffic.close()


async def test_entries_delivered_too_often_are_archived_alone_never_dead_lettered_for_it(
    redis: Redis, engine: AsyncEngine, archivers: Archivers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="chatroom.archiver")
    traffic = Traffic(redis)
    key = redis_keys.room_stream("lobby")
    await redis.xgroup_create(key, "archiver", id="0", mkstream=True)
    valid = await traffic.send("lobby", 2)
    bad = await redis.xadd(key, {"event": b"[" * 5000 + b"]" * 5000})
    for attempt in range(3):  # three crashed attempts of consumer a1 on the same entries
        await redis.xreadgroup("archiver", "a1", {key: "0" if attempt else ">"}, count=10)
    later = await traffic.send("lobby", 2)
    archiver = archivers.new(consumer="a1", archiver_max_deliveries=3)
    # Before: all three were dead-lettered as "delivered 4 times", valid messages included.
    assert await archiver.drain() == 4
    assert [r[0] for r in await archived_rows(engine, "lobby")] == [*valid, *later]
    letters = await dead_letter_rows(engine)
    assert [(row["stream_id"], row["reason"]) for row in letters] == [
        (bad.decode(), "invalid event: not JSON: nested too deeply")
    ]
    assert archiver.suspects == 3 and await pending_count(redis, "lobby") == 0
    warned = [r.getMessage() for r in caplog.records if "trying it alone" in r.getMessage()]
    assert len(warned) == 3 and f"lobby {valid[0]} was delivered 4 times" in warned[0]
    found = (await collect_status(redis, engine)).as_json()
    assert found["rooms"]["lobby"]["suspects"] == 3 and found["total"]["suspects"] == 3
    await traffic.close()


async def test_a_row_sql_rejects_is_isolated_into_the_dead_letters(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    await create_room(engine, "doomed")
    traffic = Traffic(redis)
    await traffic.send("doomed", 1)
    archiver = archivers.new(consumer="a1")
    assert await archiver.drain() == 1
    # The room disappears from SQL while the archiver still knows its id: its next
    # rows break the foreign key; the other rooms' rows of the same batch must not care.
    async with engine.begin() as conn:
        await conn.execute(sa.delete(messages))
        await conn.execute(sa.delete(rooms).where(rooms.c.slug == "doomed"))
    lobby = await traffic.send("lobby", 40)
    doomed = await traffic.send("doomed", 3)
    assert await archiver.drain() == 40
    assert [r[0] for r in await archived_rows(engine, "lobby")] == lobby
    letters = await dead_letter_rows(engine)
    assert sorted(row["stream_id"] for row in letters) == sorted(str(i) for i in doomed)
    assert all(row["reason"].startswith("rejected by SQL") for row in letters)
    assert await pending_count(redis, "doomed") == 0
    await traffic.close()


async def test_trimming_keeps_the_hot_window_and_never_drops_unarchived(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    await create_room(engine, "blind")
    traffic = Traffic(redis)
    await traffic.send("lobby", 60)
    archiver = archivers.new(consumer="a1", archiver_hot_window=25)
    assert await archiver.drain() == 60
    stream = redis_keys.room_stream("lobby")
    assert await redis.xlen(stream) == 25  # the hot window, all archived
    await assert_exactly_once(redis, engine, traffic)

    # Unarchived entries (never read, or pending with a slow consumer) stay.
    streams = GroupStreams(redis, redis, "a1")
    await traffic.send("lobby", 30)
    await redis.xreadgroup("archiver", "slow", {stream: ">"}, count=10)
    assert await streams.trim("lobby", 0) == 25  # only the archived ones went
    assert await redis.xlen(stream) == 30

    # Control: the blog's blind MAXLEN on a room whose last 30 are not archived yet.
    sent = await traffic.send("blind", 30)
    await redis.xtrim(redis_keys.room_stream("blind"), maxlen=10, approximate=False)
    await asyncio.sleep(0.15)
    await archiver.drain()
    blind = [r[0] for r in await archived_rows(engine, "blind")]
    assert blind == sent[-10:]  # 20 acknowledged messages are gone for good
    assert len(set(sent) - set(blind)) == 20
    # Ours, on the same traffic: everything arrives.
    assert [r[0] for r in await archived_rows(engine, "lobby")] == sorted(traffic.sent["lobby"])
    await traffic.close()


class SimulatedCrash(BaseException):
    """An in-process archiver's kill -9: raised at a failpoint, caught by no handler."""


async def test_two_archivers_share_a_backlog_and_one_killed_mid_batch_leaves_its_batch_to_the_other(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    rooms = ["lobby", "r1", "r2", "r3", "r4"]
    for slug in rooms[1:]:
        await create_room(engine, slug)
    traffic = Traffic(redis)
    for slug in rooms:  # a real backlog, spread over the rooms
        await traffic.send(slug, 600)
    archived_by: dict[str, list[tuple[str, StreamId]]] = {"first": [], "second": []}

    def record(who: str) -> ArchivedHook:
        return lambda room, ids: archived_by[who].extend((room, i) for i in ids)

    def crash_once_both_work() -> None:
        # The first is killed mid-batch (committed, not acknowledged), once both have
        # archived a share; until then, the next batch is its chance.
        if not all(archived_by.values()):
            crash.arm("after_commit_before_ack")
            return
        raise SimulatedCrash

    crash = Failpoints("after_commit_before_ack", action=crash_once_both_work)
    # Short claims: the survivor adopts the killed one's batch within a second or so.
    settings: dict[str, Any] = {"archiver_batch_size": 50, "archiver_claim_idle_ms": 1000}
    first = archivers.new(failpoints=crash, on_archived=record("first"), **settings)
    second = archivers.new(on_archived=record("second"), **settings)
    runs = [archivers.start(first), archivers.start(second)]
    with pytest.raises(SimulatedCrash):
        await asyncio.wait_for(runs[0].task, 30)
    orphaned = await _pending_of(redis, first.consumer, rooms)
    assert orphaned, "the killed archiver left no batch pending"
    assert not runs[1].task.done()  # the other runs on: it adopts the batch
    in_sql = {(room, r[0]) for room in rooms for r in await archived_rows(engine, room)}
    # The batch it died in was committed (the next one was read only: reads overlap).
    assert orphaned & in_sql
    for slug in rooms:  # more traffic while the survivor adopts the batch
        await traffic.send(slug, 20)
    await wait_for(lambda: _has(engine, traffic.count()), what="everything archived")
    await runs[1].stop()
    first_set, second_set = set(archived_by["first"]), set(archived_by["second"])
    # Who archived what: each entry by exactly one of them, their union exactly what was
    # sent, both a share, and the killed one's batch by the survivor.
    assert len(first_set) == len(archived_by["first"]) and first.archived == len(first_set)
    assert len(second_set) == len(archived_by["second"]) and second.archived == len(second_set)
    assert first_set and second_set and not first_set & second_set
    sent = {(room, i) for room, ids in traffic.sent.items() for i in ids}
    assert first_set | second_set == sent and len(sent) == 3100
    assert orphaned <= second_set
    assert first.consumer != second.consumer
    await assert_exactly_once(redis, engine, traffic)  # SQL: every one once, none pending
    await traffic.close()


async def _pending_of(redis: Redis, consumer: str, rooms: list[str]) -> set[tuple[str, StreamId]]:
    found: set[tuple[str, StreamId]] = set()
    for slug in rooms:
        key = redis_keys.room_stream(slug)
        rows: Any = await redis.xpending_range(
            key, "archiver", min="-", max="+", count=10_000, consumername=consumer
        )
        found |= {(slug, StreamId.parse(row["message_id"])) for row in rows}
    return found


async def test_a_dead_consumers_pending_entries_are_adopted(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    traffic = Traffic(redis)
    key = redis_keys.room_stream("lobby")
    await traffic.send("lobby", 150)
    await redis.xgroup_create(key, "archiver", id="0")
    await redis.xreadgroup("archiver", "crashed-host-0", {key: ">"}, count=100)
    assert await pending_count(redis, "lobby") == 100
    await asyncio.sleep(0.15)
    assert await archivers.new(consumer="heir").drain() == 150
    await assert_exactly_once(redis, engine, traffic)
    # The dead consumer holds nothing now and has no heartbeat: it is removed.
    streams = GroupStreams(redis, redis, "heir")
    await redis.xreadgroup("archiver", "busy", {key: ">"}, count=1)  # nothing new: no pending
    await traffic.send("lobby", 1)
    await redis.xreadgroup("archiver", "busy", {key: ">"}, count=1)
    removed = await streams.remove_gone_consumers("lobby", idle_ms=0)
    assert "crashed-host-0" in removed and "busy" not in removed  # busy holds one entry
    await traffic.close()


async def test_interval_and_cron_schedules(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    traffic = Traffic(redis)
    interval = archivers.new(archiver_schedule="interval", archiver_interval_s=0.2)
    running = archivers.start(interval)
    await traffic.send("lobby", 30)
    await wait_for(lambda: _has(engine, 30), what="the interval run")
    await running.stop()

    # Cron: the window is never now; the valve opens at a backlog of 50.
    hour = time.gmtime().tm_hour
    window = f"{(hour + 2) % 24:02d}:00-{(hour + 3) % 24:02d}:00"
    cron = archivers.new(
        archiver_schedule="cron",
        archiver_cron_window=window,
        archiver_valve_backlog=50,
        archiver_interval_s=0.1,
    )
    running = archivers.start(cron)
    await traffic.send("lobby", 30)
    await asyncio.sleep(0.6)
    assert await archived_total(engine) == 30  # outside the window, under the valve
    await traffic.send("lobby", 30)
    await wait_for(lambda: _has(engine, 90), what="the valve")
    await running.stop()
    await assert_exactly_once(redis, engine, traffic)
    await traffic.close()


async def test_big_batches_are_chunked_under_the_packet_limit(
    backend: Backend, redis: Redis, engine: AsyncEngine
) -> None:
    room_id = (await room_ids(engine))["lobby"]
    batch = [
        ArchivedMessage(room_id, StreamId(1_700_000_000_000 + i, 0), 7, f"big-{i}", "é" * 4000)
        for i in range(60)
    ]
    async with engine.begin() as conn:
        # 60 rows of ~16 KB each with a 100 KB statement limit: many statements, one commit.
        await upsert_messages(conn, batch, max_bytes=100_000)
    rows = await archived_rows(engine, "lobby")
    assert len(rows) == 60 and all(body == "é" * 4000 for _, _, body in rows)


async def test_history_stays_gapless_while_the_archiver_moves_and_trims(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    traffic = Traffic(redis)
    running = archivers.start(archivers.new(archiver_hot_window=5, archiver_batch_size=20))
    room_id = (await room_ids(engine))["lobby"]
    history = History(redis, ArchivedPages(engine))
    walks: list[list[StreamId]] = []

    async def walk() -> None:
        seen: list[StreamId] = []
        page = await history.page(room_id, "lobby", limit=17)
        while True:
            seen = [m.id for m in page.messages] + seen
            if not page.has_more:
                break
            page = await history.page(room_id, "lobby", before=page.messages[0].id, limit=17)
        walks.append(seen)

    for _ in range(25):
        await traffic.send("lobby", 12)
        await walk()
    await wait_for(lambda: _has(engine, traffic.count()), what="everything archived")
    await running.stop()
    everything = sorted(traffic.sent["lobby"])
    for seen in walks:
        # Each walk is exactly the messages sent before it: no gap, no duplicate.
        assert seen == everything[: len(seen)] and len(seen) >= 12
    assert await redis.xlen(redis_keys.room_stream("lobby")) <= 25  # trimmed meanwhile
    await assert_exactly_once(redis, engine, traffic)
    await traffic.close()


async def test_a_resend_after_redis_forgot_its_client_id_is_a_visible_dead_letter(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    traffic = Traffic(redis)
    event = MessageEvent("lobby", ALICE, "sent once, resent a week later", "resent-1")
    first = await traffic.writer.append(event)
    archiver = archivers.new(consumer="a1")
    assert await archiver.drain() == 1
    # Redis forgot the client_id (its TTL passed, or it was evicted): the resend is
    # appended again, under a new id the sender is told about.
    await redis.delete(redis_keys.sent_client_id("lobby", ALICE.id, "resent-1"))
    again = await traffic.writer.append(event)
    assert not again.duplicate and again.id > first.id
    archived_before = _metric("chatroom_archiver_archived_rows_total", "lobby")
    dead_before = _metric("chatroom_archiver_dead_letters_total", "lobby")
    assert await archiver.drain() == 0
    # SQL stores the message once; the late copy is a dead letter naming the first id.
    assert await archived_rows(engine, "lobby") == [(first.id, "resent-1", event.body)]
    letters = await dead_letter_rows(engine)
    assert [(row["stream_id"], row["reason"]) for row in letters] == [
        (str(again.id), f"duplicate client_id of {first.id}")
    ]
    assert bytes(letters[0]["raw"]) == event.encode()
    assert (archiver.archived, archiver.dead_lettered) == (1, 1)
    assert _metric("chatroom_archiver_archived_rows_total", "lobby") == archived_before
    assert _metric("chatroom_archiver_dead_letters_total", "lobby") == dead_before + 1
    found = (await collect_status(redis, engine)).as_json()["rooms"]["lobby"]
    assert (found["archived"], found["dead_letters"]) == (1, 1)
    assert (found["backlog"], found["pending"]) == (0, 0)
    rate, _ = await archiver_progress(redis, "lobby", int(time.time() * 1000) + 1500)
    assert rate == round(1 / 60, 2)  # the late copy did not count as archived
    await traffic.close()


async def test_a_client_id_appended_twice_in_one_batch_and_replays_of_archived_entries(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    traffic = Traffic(redis)
    event = MessageEvent("lobby", ALICE, "twice in one batch", "resent-2")
    first = await traffic.writer.append(event)
    await redis.delete(redis_keys.sent_client_id("lobby", ALICE.id, "resent-2"))
    again = await traffic.writer.append(event)
    others = await traffic.send("lobby", 3)
    archiver = archivers.new(consumer="a1", archiver_hot_window=100)
    assert await archiver.drain() == 4
    assert [r[0] for r in await archived_rows(engine, "lobby")] == [first.id, *others]
    letters = await dead_letter_rows(engine)
    assert [(row["stream_id"], row["reason"]) for row in letters] == [
        (str(again.id), f"duplicate client_id of {first.id}")
    ]
    # A replay of archived entries (as after a crash between COMMIT and XACK) is a silent
    # no-op for the rows; the late copy stays one dead letter.
    await redis.xgroup_setid(redis_keys.room_stream("lobby"), "archiver", "0")
    assert await archiver.drain() == 4
    assert [r[0] for r in await archived_rows(engine, "lobby")] == [first.id, *others]
    assert len(await dead_letter_rows(engine)) == 1
    assert await pending_count(redis, "lobby") == 0
    await traffic.close()


async def test_write_batch_finds_client_id_duplicates_on_any_engine(
    backend: Backend, engine: AsyncEngine
) -> None:
    # The test engine is a plain one: on MySQL its row counts include duplicates
    # (CLIENT_FOUND_ROWS), so write_batch must look rather than trust them.
    room_id = (await room_ids(engine))["lobby"]
    stored = ArchivedMessage(room_id, StreamId(1_700_000_000_000, 0), 7, "same", "hi")
    late = ArchivedMessage(room_id, StreamId(1_700_000_000_500, 0), 7, "same", "hi")
    fresh = ArchivedMessage(room_id, StreamId(1_700_000_000_600, 0), 7, "other", "yo")
    async with engine.begin() as conn:
        assert await write_batch(conn, [stored], [], max_bytes=1_000_000) == []
    async with engine.begin() as conn:
        found = await write_batch(conn, [stored, late, fresh], [], max_bytes=1_000_000)
    assert found == [Duplicate(1, stored.id)]  # the replay of `stored` is no duplicate
    rows = await archived_rows(engine, "lobby")
    assert [r[0] for r in rows] == [stored.id, fresh.id]


@pytest.mark.parametrize("skew_s", [-3600, 3600], ids=["behind", "ahead"])
async def test_a_drain_ends_by_redis_clock_under_constant_traffic_whatever_the_local_clock(
    skew_s: int,
    redis: Redis,
    engine: AsyncEngine,
    archivers: Archivers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    traffic = Traffic(redis)
    backlog = await traffic.send("lobby", 300)
    read_new = GroupReader.read_new

    async def read_under_constant_traffic(
        reader: GroupReader, count: int, block_ms: int | None
    ) -> list[Delivery]:
        await traffic.send("lobby", 5)  # every read finds new messages
        return await read_new(reader, count, block_ms)

    monkeypatch.setattr(GroupReader, "read_new", read_under_constant_traffic)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + skew_s)
    archiver = archivers.new(consumer="a1", archiver_batch_size=50)
    # Before: the local clock decided. An hour behind, the drain ended after its first
    # batch (50 of the 300); an hour ahead, it never ended under constant traffic.
    drained = await asyncio.wait_for(archiver.drain(), 30)
    monkeypatch.undo()
    assert drained >= 300
    archived = {r[0] for r in await archived_rows(engine, "lobby")}
    assert set(backlog) <= archived
    await traffic.close()
