"""Benchmark message search: what the full-text index costs the archiver's writes, and
how long a search takes on a filled archive.

    python bench/search.py --messages 50000 --engine sqlite
    python bench/search.py --messages 50000 --engine mariadb   # database chatroom_bench_search

Writes: the same rows, in the archiver's 1,000-row idempotent upserts, into a `messages`
table with the index (migration 0004: SQLite's FTS5 triggers, InnoDB's FULLTEXT) and into
one without it (the index dropped), alternating rounds so that both see the same machine.
Search: `MessageSearch.search` for a user in 10 of the 50 rooms (the rest private), for a
rare word, a common one and two words, the median and p95 of many runs.
`BENCH_DATABASE_URL` moves MariaDB elsewhere. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.domain.search_query import parse_query
from chatroom.domain.stream_ids import StreamId
from chatroom.store import migrate
from chatroom.store.archive_writes import ArchivedMessage, upsert_messages
from chatroom.store.database import create_engine, ensure_database
from chatroom.store.search import MessageSearch
from chatroom.store.tables import rooms, users

MARIADB_URL = os.environ.get(
    "BENCH_DATABASE_URL", "mysql+asyncmy://root@127.0.0.1:3306/chatroom_bench_search"
)
ROOMS = 50
WORDS = [
    "deploy",
    "release",
    "build",
    "test",
    "merge",
    "review",
    "ticket",
    "sprint",
    "budget",
    "invoice",
    "lunch",
    "coffee",
    "meeting",
    "standup",
    "design",
    "server",
    "client",
    "database",
    "cache",
    "queue",
    "metric",
    "alert",
    "backup",
    "network",
    "storage",
    "router",
    "kernel",
    "patch",
    "update",
    "install",
    "config",
    "secret",
    "token",
]
BATCH = 1000


def _body(rng: random.Random, n: int) -> str:
    words = rng.choices(WORDS, k=rng.randint(4, 16))
    if n % 5000 == 0:
        words.append("xylophone")  # a rare word
    return " ".join(words).capitalize()


def _rows(count: int, room_ids: list[int], seed: int) -> list[ArchivedMessage]:
    rng = random.Random(seed)
    base = 1_700_000_000_000
    return [
        ArchivedMessage(
            room_ids[n % len(room_ids)], StreamId(base + n, 0), 1, f"b{n}", _body(rng, n)
        )
        for n in range(count)
    ]


async def _fresh(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        Path(url.split("///", 1)[1]).unlink(missing_ok=True)
    else:
        await ensure_database(url)
        server = create_engine(url)
        async with server.begin() as conn:
            await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=0"))
            for name in (
                "dead_letters",
                "messages",
                "read_marks",
                "room_members",
                "api_tokens",
                "rooms",
                "users",
                "alembic_version",
            ):
                await conn.execute(sa.text(f"DROP TABLE IF EXISTS `{name}`"))
        await server.dispose()
    engine = create_engine(url)
    await migrate.upgrade(engine)
    return engine


async def _setup(engine: AsyncEngine) -> list[int]:
    now = sa.func.now() if engine.dialect.name == "sqlite" else sa.text("UTC_TIMESTAMP(3)")
    async with engine.begin() as conn:
        await conn.execute(
            users.insert().values(
                id=1,
                username="bench",
                username_key="bench",
                display_name="Bench",
                password_hash="-",
                created_at=now,
            )
        )
        for n in range(ROOMS):
            await conn.execute(
                rooms.insert().values(
                    slug=f"room-{n}", title=f"Room {n}", is_private=n >= 10, created_at=now
                )
            )
        ids = [
            int(r)
            for r in (await conn.execute(sa.select(rooms.c.id).order_by(rooms.c.id))).scalars()
        ]
    return ids


async def _drop_index(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for name in ("messages_fts_insert", "messages_fts_update", "messages_fts_delete"):
                await conn.execute(sa.text(f"DROP TRIGGER {name}"))
        else:
            await conn.execute(sa.text("ALTER TABLE messages DROP INDEX ix_messages_body_fulltext"))


async def _write(engine: AsyncEngine, rows: list[ArchivedMessage]) -> float:
    started = time.perf_counter()
    for start in range(0, len(rows), BATCH):
        async with engine.begin() as conn:
            await upsert_messages(conn, rows[start : start + BATCH])
    return time.perf_counter() - started


async def _searches(engine: AsyncEngine, runs: int) -> dict[str, dict[str, float]]:
    search = MessageSearch(engine)
    figures: dict[str, dict[str, float]] = {}
    for text in ("xylophone", "deploy", "kernel patch"):
        query = parse_query(text)
        times = []
        found = 0
        for _ in range(runs):
            started = time.perf_counter()
            page = await search.search(2, query, limit=20)
            times.append(time.perf_counter() - started)
            found = len(page.hits)
        times.sort()
        figures[text] = {
            "median_ms": round(1000 * statistics.median(times), 2),
            "p95_ms": round(1000 * times[int(0.95 * (len(times) - 1))], 2),
            "page": found,
        }
    return figures


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        urls = {
            "sqlite": (
                f"sqlite+aiosqlite:///{folder}/indexed.db",
                f"sqlite+aiosqlite:///{folder}/plain.db",
            ),
            "mariadb": (MARIADB_URL, MARIADB_URL + "_plain"),
        }[args.engine]
        indexed, plain = await _fresh(urls[0]), await _fresh(urls[1])
        try:
            room_ids = await _setup(indexed)
            await _setup(plain)
            await _drop_index(plain)
            async with indexed.begin() as conn:  # the searching user sees 10 public rooms
                await conn.execute(
                    sa.text(
                        "INSERT INTO users (id, username, username_key, display_name, "
                        "password_hash, created_at) "
                        "VALUES (2, 'reader', 'reader', 'Reader', '-', '2026-01-01')"
                    )
                )
            rows = _rows(args.messages, room_ids, seed=7)
            rounds = 5
            per_round = len(rows) // rounds
            took = {"indexed": 0.0, "plain": 0.0}
            for n in range(rounds):
                chunk = rows[n * per_round : (n + 1) * per_round]
                order = [("indexed", indexed), ("plain", plain)]
                for name, engine in order if n % 2 == 0 else reversed(order):
                    took[name] += await _write(engine, chunk)
            written = per_round * rounds
            result = {
                "engine": args.engine,
                "messages": written,
                "rows_per_s_indexed": round(written / took["indexed"]),
                "rows_per_s_plain": round(written / took["plain"]),
                "write_cost": round(took["indexed"] / took["plain"], 2),
                "search": await _searches(indexed, args.runs),
                "load_average": os.getloadavg()[0],
            }
        finally:
            await indexed.dispose()
            await plain.dispose()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--engine", choices=("sqlite", "mariadb"), default="sqlite")
    parser.add_argument("--runs", type=int, default=50)
    print(json.dumps(asyncio.run(main(parser.parse_args()))), file=sys.stdout)
