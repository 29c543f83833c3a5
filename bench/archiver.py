"""Benchmark the archiver against the blog's algorithm and the raw SQL limit.

    python bench/archiver.py --messages 200000

Fills 50 room streams with a backlog, then, side by side in one run:
  ours:  `Archiver.drain()` (multi-row idempotent upserts, one transaction per batch,
         pipelined XACK, reads overlapping writes);
  blog:  the origin blog's loop (XREADGROUP COUNT 100, then one INSERT and one XACK per
         message, back to back), on the first --blog-messages messages;
  raw:   the rows ours wrote, read back and written again by a plain executemany of
         1,000-row batches, without Redis, on the archiver's writer connection settings;
then send-to-durable latency (send to SQL commit) in continuous mode at a steady
--rate messages/s. Uses MariaDB database `chatroom_bench` and Redis database 14 unless
told otherwise. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
import uvloop
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.archiver import sql_writes
from chatroom.archiver.batching import Delivery
from chatroom.archiver.service import Archiver
from chatroom.archiver.sql_writes import BatchWriter
from chatroom.domain.changes import ChangeEvent
from chatroom.domain.events import Author, MessageEvent, decode_event
from chatroom.domain.stream_ids import StreamId
from chatroom.heap import settle_heap
from chatroom.redis_client import connect
from chatroom.settings import Settings
from chatroom.store import migrate
from chatroom.store.archive_writes import MESSAGE_COLUMNS, ArchivedMessage, create_writes_engine
from chatroom.store.counts import room_ids
from chatroom.store.database import create_engine, ensure_database
from chatroom.store.tables import message_events, messages, metadata, reactions, rooms
from chatroom.streams.writer import StreamWriter

ROOMS = [f"bench-{i:02d}" for i in range(50)]
AUTHOR = Author(1, "bencher", "Bench User")


def say(text: str) -> None:
    print(text, flush=True)


async def reset_database(url: str) -> AsyncEngine:
    await ensure_database(url)
    engine = create_engine(url, pool_size=8)
    async with engine.begin() as conn:
        if conn.dialect.name == "mysql":
            await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=0"))
        for table in [*reversed(metadata.sorted_tables), sa.table("alembic_version")]:
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS {table.name}"))
    await migrate.upgrade(engine)
    now = datetime.now(UTC).replace(tzinfo=None)
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(rooms), [{"slug": s, "title": s, "created_at": now} for s in ROOMS]
        )
    return engine


async def truncate_messages(engine: AsyncEngine) -> None:
    """Empty the archive tables. On MariaDB by TRUNCATE (a new, empty table), not DELETE:
    every timed phase then starts from the same table, and none runs while the server
    still purges the rows a DELETE left behind for its predecessor."""
    async with engine.begin() as conn:
        if conn.dialect.name == "mysql":
            await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=0"))
            for table in (messages, message_events, reactions):
                await conn.execute(sa.text(f"TRUNCATE TABLE {table.name}"))
            await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=1"))
            return
        await conn.execute(sa.delete(messages))
        await conn.execute(sa.delete(message_events))
        await conn.execute(sa.delete(reactions))


async def count_messages(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(messages)
        return int((await conn.execute(query)).scalar_one())


async def fill_backlog(redis: Redis, total: int, event_share: float = 0.0) -> int:
    """XADD `total` entries round-robin over the rooms, 5,000 per pipeline; with
    `event_share`, that share of them (after the first pipeline) are changes (edits,
    reactions, unreactions in 2:2:1) to messages of an earlier pipeline in the same
    room. Returns how many entries are messages."""
    await redis.sadd(redis_keys.ROOMS_WITH_STREAMS, *ROOMS)
    rng = random.Random(12)
    earlier: dict[str, list[StreamId]] = {}
    sent = messages_sent = 0
    while sent < total:
        kinds: list[tuple[str, bool]] = []
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(sent, min(total, sent + 5000)):
                room = ROOMS[i % len(ROOMS)]
                event: MessageEvent | ChangeEvent
                targets = earlier.get(room)
                if targets and rng.random() < event_share:
                    target = rng.choice(targets)
                    kind = rng.choice(["edit", "edit", "react", "react", "unreact"])
                    if kind == "edit":
                        body = f"edited {i}: the quick brown fox jumps over the lazy cat"
                        event = ChangeEvent(kind, room, AUTHOR, target, f"bench-{i}", body=body)
                    else:
                        emoji = rng.choice(["👍", "🎉", "❤️"])
                        event = ChangeEvent(kind, room, AUTHOR, target, f"bench-{i}", emoji=emoji)
                else:
                    body = f"message number {i}: the quick brown fox jumps over the lazy dog"
                    event = MessageEvent(room, AUTHOR, body, f"bench-{i}")
                kinds.append((room, isinstance(event, MessageEvent)))
                pipe.xadd(redis_keys.room_stream(room), {"event": event.encode()})
            ids = await pipe.execute()
        for (room, is_message), entry_id in zip(kinds, ids, strict=True):
            if is_message:
                messages_sent += 1
                earlier.setdefault(room, []).append(StreamId.parse(entry_id))
        sent = min(total, sent + 5000)
    return messages_sent


async def archived_rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    """The rows our archiver wrote, read back in MESSAGE_COLUMNS order: the raw baseline
    writes exactly these (read after our run, so that our run does not carry them in
    memory: every garbage collection during it would walk them too)."""
    columns = [messages.c[name] for name in MESSAGE_COLUMNS]
    async with engine.connect() as conn:
        result = await conn.execute(sa.select(*columns).order_by(messages.c.id))
        return [tuple(row) for row in result.all()]


async def blog_algorithm(
    redis: Redis, engine: AsyncEngine, ids: dict[str, int], limit: int
) -> float:
    """The blog's loop: COUNT 100, one INSERT and one XACK per message. Returns rows/s."""
    for room in ROOMS:
        await redis.xgroup_create(redis_keys.room_stream(room), "blog", id="0")
    done = 0
    started = time.perf_counter()
    while done < limit:
        moved = 0
        for room in ROOMS:
            key = redis_keys.room_stream(room)
            reply: Any = await redis.xreadgroup("blog", "c1", {key: ">"}, count=100)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    event = decode_event(room, fields)
                    if not isinstance(event, MessageEvent):  # the blog knew no changes
                        await redis.xack(key, "blog", entry_id)
                        continue
                    row = ArchivedMessage(
                        ids[room], StreamId.parse(entry_id), 1, event.client_id, event.body
                    ).row()
                    async with engine.begin() as conn:
                        await conn.execute(sa.insert(messages).values(row))
                    await redis.xack(key, "blog", entry_id)
                    done += 1
                    moved += 1
                    if done >= limit:
                        break
                if done >= limit:
                    break
            if done >= limit:
                break
        if not moved:
            break
    elapsed = time.perf_counter() - started
    for room in ROOMS:
        await redis.xgroup_destroy(redis_keys.room_stream(room), "blog")
    return done / elapsed


async def raw_executemany(url: str, rows: list[tuple[Any, ...]]) -> tuple[float, float]:
    """Plain executemany of 1,000-row batches of ready tuples, one transaction each, on
    one connection kept throughout, set up exactly like the archiver's writers
    (`create_writes_engine`: on MariaDB a bulk execution per batch), warmed up first.
    Returns rows/s, and the ms per 1,000 rows spent in the executemany (the rest: begin
    and commit)."""
    engine = create_writes_engine(url, pool_size=1)
    upsert_s = 0.0
    insert = sa.insert(messages).compile(dialect=engine.dialect, column_keys=list(MESSAGE_COLUMNS))
    try:
        # One connection kept for every batch: no pool pre-ping nor reset between them
        # (two round trips fewer per transaction), the least a writer can do.
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
            await conn.commit()
            started = time.perf_counter()
            for start in range(0, len(rows), 1000):
                async with conn.begin():
                    begun = time.perf_counter()
                    await conn.exec_driver_sql(str(insert), rows[start : start + 1000])
                    upsert_s += time.perf_counter() - begun
            return len(rows) / (time.perf_counter() - started), upsert_s / len(rows) * 1e6
    finally:
        await engine.dispose()


async def latency(
    settings: Settings, redis_url: str, engine: AsyncEngine, rate: int, seconds: float
) -> dict[str, float]:
    """Send at a steady `rate` for `seconds` while the archiver runs continuously; the
    send-to-durable time of each message is from the send call to its SQL commit."""
    redis = connect(redis_url)
    writer = StreamWriter(redis, client_id_ttl_s=600)
    archiver = Archiver(settings, redis_url, engine, consumer="bench-latency")
    durable: dict[tuple[str, StreamId], float] = {}  # ids repeat across rooms
    commit = BatchWriter._transaction  # instrumented: when each row's transaction committed

    async def timed_commit(
        writer: BatchWriter,
        batch: list[tuple[Delivery, ArchivedMessage]],
        letters: Any,
        *args: Any,
    ) -> list[Any]:
        result = await commit(writer, batch, letters, *args)
        now = time.perf_counter()
        for entry, _ in batch:
            durable.setdefault((entry.room, entry.id), now)
        return result

    BatchWriter._transaction = timed_commit  # type: ignore[method-assign,assignment]
    stop = asyncio.Event()
    running = asyncio.create_task(archiver.run(stop))
    # Warm up: every room has a stream and the archiver has found it (new rooms are
    # found within a second); the figures are for steady traffic.
    warm = [
        await writer.append(MessageEvent(room, AUTHOR, "warm-up", f"warm-{room}")) for room in ROOMS
    ]
    while len(durable) < len(warm):
        await asyncio.sleep(0.05)
    durable.clear()
    sent: dict[tuple[str, StreamId], float] = {}
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    serial = 0
    started = time.perf_counter()

    async def send_one(event: MessageEvent) -> None:
        at = time.perf_counter()
        appended = await writer.append(event)
        sent[(event.room, appended.id)] = at

    pending: set[asyncio.Task[None]] = set()
    while time.perf_counter() - started < seconds:
        for _ in range(per_tick):
            serial += 1
            room = ROOMS[serial % len(ROOMS)]
            event = MessageEvent(room, AUTHOR, f"live message {serial}", f"live-{serial}")
            task = asyncio.create_task(send_one(event))
            pending.add(task)
            task.add_done_callback(pending.discard)
        serial_target = int((time.perf_counter() - started) / tick) + 1
        next_at = started + serial_target * tick
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    await asyncio.gather(*pending)
    sent_rate = len(sent) / (time.perf_counter() - started)
    deadline = time.perf_counter() + 30
    while len(durable.keys() & sent.keys()) < len(sent) and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await running
    BatchWriter._transaction = commit  # type: ignore[method-assign]
    await writer.close()
    await redis.aclose()
    waits = sorted((durable[i] - at) * 1000 for i, at in sent.items() if i in durable)
    return {
        "latency_messages": len(sent),
        "latency_rate_per_s": round(sent_rate, 1),
        "latency_p50_ms": round(statistics.median(waits), 1),
        "latency_p99_ms": round(waits[int(len(waits) * 0.99) - 1], 1),
        "latency_max_ms": round(waits[-1], 1),
        "latency_missing": len(sent) - len(waits),
    }


def sql_process(url: str, fresh_pid: int | None) -> psutil.Process | None:
    """The MariaDB server process of `url` (the fresh one, or the machine's mariadbd on
    its port), for its CPU time; None when it cannot be found."""
    if fresh_pid is not None:
        return psutil.Process(fresh_pid)
    port = sa.engine.make_url(url).port or 3306
    for proc in psutil.process_iter(["name"]):
        if proc.info.get("name") not in ("mariadbd", "mysqld"):
            continue
        with contextlib.suppress(psutil.Error):
            if any(c.laddr.port == port for c in proc.net_connections("tcp")):
                return proc
    return None


def sql_cpu_seconds(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    with contextlib.suppress(psutil.Error):
        times = process.cpu_times()
        return float(times.user + times.system)
    return 0.0


async def our_drain(
    args: argparse.Namespace,
    settings: Settings,
    engine: AsyncEngine,
    message_count: int,
    writers: int,
    sql_server: psutil.Process | None,
) -> dict[str, float]:
    """`Archiver.drain()` of the whole backlog with `writers` parallel SQL writers (by
    `--archivers` archivers at once): rows/s, and CPU per row of this process (the
    archivers) and of the SQL server."""
    say(f"our archiver draining {args.messages} messages with {writers} SQL writer(s) ...")
    settings = settings.model_copy(update={"archiver_sql_writers": writers})
    settle_heap()  # as `chatroom archive` does once it has started
    transactions: list[tuple[float, float]] = []  # (start, end) of each, for the SQL phases
    transaction = BatchWriter._transaction

    async def timed(writer: BatchWriter, rows: Any, letters: Any, *args: Any) -> Any:
        begun = time.perf_counter()
        try:
            return await transaction(writer, rows, letters, *args)
        finally:
            transactions.append((begun, time.perf_counter()))

    # Inside each transaction: the upsert (with the dead letters), then the changes and
    # the held ones (a query in the transactions that look for them); begin and commit
    # are the rest. A drain's final look for held changes, a transaction of its own, is
    # not counted.
    statements = {"upsert": 0.0, "changes": 0.0}
    write_batch, apply_changes = sql_writes.write_batch, sql_writes.apply_changes

    async def timed_upsert(*args: Any, **kwargs: Any) -> Any:
        begun = time.perf_counter()
        try:
            return await write_batch(*args, **kwargs)
        finally:
            statements["upsert"] += time.perf_counter() - begun

    async def timed_changes(*args: Any, **kwargs: Any) -> Any:
        begun = time.perf_counter()
        try:
            return await apply_changes(*args, **kwargs)
        finally:
            statements["changes"] += time.perf_counter() - begun

    sql_writes.write_batch, sql_writes.apply_changes = timed_upsert, timed_changes
    BatchWriter._transaction = timed  # type: ignore[method-assign]
    cpu, sql_cpu = time.process_time(), sql_cpu_seconds(sql_server)
    started = time.perf_counter()
    drains = [
        Archiver(settings, args.redis_url, engine, consumer=f"bench-{i}").drain()
        for i in range(args.archivers)
    ]
    try:
        archived = sum(await asyncio.gather(*drains))  # --archivers share the backlog
    finally:
        BatchWriter._transaction = transaction  # type: ignore[method-assign]
        sql_writes.write_batch, sql_writes.apply_changes = write_batch, apply_changes
    elapsed = time.perf_counter() - started
    cpu, sql_cpu = time.process_time() - cpu, sql_cpu_seconds(sql_server) - sql_cpu
    stored = await count_messages(engine)
    if archived != args.messages or stored != message_count:
        raise SystemExit(
            f"archived {archived} entries, stored {stored} messages, expected "
            f"{args.messages} and {message_count}"
        )
    return {
        "rows_per_s": round(archived / elapsed, 1),
        "drain_s": round(elapsed, 2),
        "cpu_us_per_row": round(cpu / archived * 1e6, 1),
        "sql_cpu_us_per_row": round(sql_cpu / archived * 1e6, 1),
        # The SQL phases: the share of the drain with a transaction open, and the time in
        # transactions per 1,000 rows (summed over parallel writers), against raw's.
        "sql_busy_share": round(busy_time(transactions) / elapsed, 2),
        "sql_ms_per_1000_rows": round(sum(b - a for a, b in transactions) / archived * 1e6, 1),
        "upsert_ms_per_1000_rows": round(statements["upsert"] / archived * 1e6, 1),
        "changes_ms_per_1000_rows": round(statements["changes"] / archived * 1e6, 1),
    }


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the runs."""
    return {key: round(statistics.median(run[key] for run in runs), 2) for key in runs[0]}


def busy_time(intervals: list[tuple[float, float]]) -> float:
    """The time covered by at least one of the intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


async def main(args: argparse.Namespace, fresh_pid: int | None = None) -> dict[str, Any]:
    redis = connect(args.redis_url)
    await redis.flushdb()
    engine = await reset_database(args.database_url)
    ids = await room_ids(engine)
    data_dir = Path(tempfile.mkdtemp(prefix="chatroom-bench-"))
    settings = Settings(data_dir=data_dir, database_url=args.database_url, redis_url=args.redis_url)
    result: dict[str, Any] = {"messages": args.messages, "rooms": len(ROOMS)}
    result["archivers"] = args.archivers
    result["redis"] = "cluster of 3 masters" if args.redis_cluster else args.redis_url
    result["sql"] = "fresh MariaDB" if args.fresh_mariadb else args.database_url

    say(f"filling {args.messages} messages over {len(ROOMS)} rooms ...")
    started = time.perf_counter()
    message_count = await fill_backlog(redis, args.messages, args.event_share)
    result["changes"] = args.messages - message_count
    result["event_share"] = args.event_share
    say(f"  filled in {time.perf_counter() - started:.1f} s")

    blog_n = min(args.messages, args.blog_messages)
    result["blog_rows_per_s"] = None
    if blog_n:
        say(f"blog algorithm on {blog_n} messages ...")
        result["blog_rows_per_s"] = round(await blog_algorithm(redis, engine, ids, blog_n), 1)
        say(f"  {result['blog_rows_per_s']} rows/s")
        await redis.flushdb()  # the backlog afresh, as for every drain of ours
        await fill_backlog(redis, args.messages, args.event_share)
    result["blog_messages"] = blog_n

    sql_server = sql_process(args.database_url, fresh_pid)
    drains: dict[str, list[dict[str, float]]] = {str(w): [] for w in args.writers}
    raws: list[dict[str, float]] = []
    filled = True
    # Rounds, each: every writer count once, then raw on the rows of the round's first
    # drain. The server's state drifts (its files grow, it flushes what it took in) and
    # the machine's neighbours come and go: medians over interleaved rounds, so that
    # ours and raw meet the same conditions.
    for round_ in range(args.rounds):
        for index, writers in enumerate(args.writers):
            if not filled:
                await redis.flushdb()
                await fill_backlog(redis, args.messages, args.event_share)
            filled = False
            await truncate_messages(engine)
            figures = await our_drain(args, settings, engine, message_count, writers, sql_server)
            drains[str(writers)].append(figures)
            say(f"  round {round_ + 1}, {writers} writer(s): {figures}")
            if index == 0:
                rows = await archived_rows(engine)
        await truncate_messages(engine)
        say(f"raw executemany of {len(rows)} rows in 1,000-row batches ...")
        raw_sql_cpu, cpu = sql_cpu_seconds(sql_server), time.process_time()
        raw_rate, raw_upsert_ms = await raw_executemany(args.database_url, rows)
        raw_sql_cpu = sql_cpu_seconds(sql_server) - raw_sql_cpu
        raws.append(
            {
                "rows_per_s": round(raw_rate, 1),
                "cpu_us_per_row": round((time.process_time() - cpu) / len(rows) * 1e6, 1),
                "sql_cpu_us_per_row": round(raw_sql_cpu / len(rows) * 1e6, 1),
                "sql_ms_per_1000_rows": round(1e6 / raw_rate, 1),
                "upsert_ms_per_1000_rows": round(raw_upsert_ms, 1),
            }
        )
        del rows
        say(f"  round {round_ + 1}, raw: {raws[-1]}")
    raw = medians(raws)
    result["raw"] = raw
    result["raw_rows_per_s"] = raw["rows_per_s"]
    result["raw_runs"] = [r["rows_per_s"] for r in raws]
    runs = {writers: medians(found) for writers, found in drains.items()}
    for writers, figures in runs.items():
        figures["vs_raw"] = round(figures["rows_per_s"] / raw["rows_per_s"], 2)
        figures["runs"] = [f["rows_per_s"] for f in drains[writers]]  # type: ignore[assignment]
    first = runs[str(args.writers[0])]
    result["rows_per_s"] = first["rows_per_s"]
    result["drain_s"] = first["drain_s"]
    result["vs_raw"] = first["vs_raw"]
    if result["blog_rows_per_s"]:
        result["vs_blog"] = round(first["rows_per_s"] / result["blog_rows_per_s"], 1)
    result["by_writers"] = runs

    await truncate_messages(engine)
    await redis.flushdb()
    if args.seconds > 0:
        say(f"send-to-durable latency at {args.rate} messages/s for {args.seconds} s ...")
        result.update(await latency(settings, args.redis_url, engine, args.rate, args.seconds))
        say(f"  p50 {result['latency_p50_ms']} ms, p99 {result['latency_p99_ms']} ms")

    await redis.flushdb()
    await redis.aclose()
    await engine.dispose()
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000, help="backlog size")
    parser.add_argument(
        "--blog-messages",
        type=int,
        default=20_000,
        help="messages for the blog's loop (it is slow; rows/s does not depend on the count)",
    )
    parser.add_argument(
        "--event-share",
        type=float,
        default=0.0,
        help="share of the backlog's entries that are changes (edits, reactions), e.g. 0.2",
    )
    parser.add_argument("--rate", type=int, default=2000, help="messages/s for the latency run")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the latency run")
    parser.add_argument(
        "--database-url", default="mysql+asyncmy://root@127.0.0.1:3306/chatroom_bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="a 3-master Redis Cluster started for the run instead of --redis-url",
    )
    parser.add_argument("--archivers", type=int, default=1, help="archivers draining at once")
    parser.add_argument(
        "--writers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2, 4],
        help="archiver_sql_writers of each drain, in order (comma-separated); all in one run",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of every --writers drain and raw, interleaved; figures are medians",
    )
    parser.add_argument(
        "--fresh-mariadb",
        action="store_true",
        help="a MariaDB started for the run (its own datadir, a free port in 23300-23399, "
        "stopped afterwards) instead of --database-url's server",
    )
    args = parser.parse_args(argv)
    if args.messages < 1 or args.rate < 1 or args.seconds < 0:
        parser.error("--messages and --rate must be positive (--seconds 0: no latency run)")
    if not args.writers or min(args.writers) < 1:
        parser.error("--writers: one or more positive counts, e.g. 1,2,4")
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncmy").setLevel(logging.ERROR)  # notes on constraint names
    arguments = parse_args(sys.argv[1:])
    fresh: int | None = None
    with contextlib.ExitStack() as servers:
        if arguments.redis_cluster:
            from _cluster import local_cluster

            arguments.redis_url = servers.enter_context(local_cluster()).url
        if arguments.fresh_mariadb:
            from _mariadb import fresh_mariadb

            database = sa.engine.make_url(arguments.database_url).database or "chatroom_bench"
            server = servers.enter_context(fresh_mariadb(database))
            arguments.database_url, fresh = server.url, server.pid
        # uvloop, as `chatroom archive` and the app nodes run: ours and raw alike.
        figures = uvloop.run(main(arguments, fresh))
    print(json.dumps(figures))
