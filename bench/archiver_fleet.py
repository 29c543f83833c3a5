"""Archiver fleet takeover: how long a killed archiver's batch waits for another one.

Two `chatroom archive` processes share live traffic on BENCH_REDIS_URL and MariaDB's
BENCH_DATABASE (flushed, dropped and migrated afresh): a survivor that runs throughout,
and a victim that dies by SIGKILL right after its third read of entries (the
`after_read` failpoint: a batch read, pending in the group, in no SQL row). The figure
is the time from the victim's death to the last of its orphaned entries in SQL, archived
by the survivor; then a new victim is started, --kills times. Traffic goes through the
real stream writer (the app node's), a few hundred messages a second.

The stated time: an entry is claimed once idle for `archiver_claim_idle_ms`, and the
survivor looks for such entries every half claim time, between its blocking reads
(`archiver_block_ms`), so the takeover is at most claim_idle x 1.5 + block_ms + one
batch; at least claim_idle.

    python bench/archiver_fleet.py
    python bench/archiver_fleet.py --kills 5 --claim-idle-ms 5000

The last line printed is one JSON object: each takeover in seconds, their median and
maximum, and the stated bound.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvloop

from _chatroom import DATABASE_URL, REDIS_URL, chatroom_env, fresh_backends
from chatroom import redis_keys
from chatroom.domain.events import Author, MessageEvent
from chatroom.redis_client import connect
from chatroom.store.database import create_engine
from chatroom.store.tables import messages
from chatroom.streams.writer import StreamWriter

ROOM = "lobby"
AUTHOR = Author(1, "bench", "Bench")


async def _start(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chatroom", "archive", env=env, stdout=out, stderr=out
        )


async def _pending_ids(redis: Any, consumer: str) -> set[str]:
    rows: Any = await redis.xpending_range(
        redis_keys.room_stream(ROOM),
        redis_keys.ARCHIVER_GROUP,
        min="-",
        max="+",
        count=100_000,
        consumername=consumer,
    )
    return {
        row["message_id"].decode() if isinstance(row["message_id"], bytes) else row["message_id"]
        for row in rows
    }


async def _in_sql(engine: Any, ids: set[str]) -> bool:
    wanted = {tuple(int(part) for part in i.split("-")) for i in ids}
    query = sa.select(messages.c.stream_ms, messages.c.stream_seq).where(
        messages.c.stream_ms >= min(ms for ms, _ in wanted)
    )
    async with engine.connect() as conn:
        found = {(r[0], r[1]) for r in (await conn.execute(query)).all()}
    return wanted <= found


async def run(args: argparse.Namespace) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="chatroom-bench-fleet-"))
    base = chatroom_env(work / "data", connections_per_user=1)
    await fresh_backends(base)
    settings = {
        "CHATROOM_ARCHIVER_CLAIM_IDLE_MS": str(args.claim_idle_ms),
        "CHATROOM_ARCHIVER_BLOCK_MS": str(args.block_ms),
        "CHATROOM_ARCHIVER_BATCH_SIZE": "100",
        "CHATROOM_LOG_LEVEL": "WARNING",
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHATROOM_")}

    def env(name: str, **extra: str) -> dict[str, str]:
        return {
            **clean,
            **base,
            **settings,
            "CHATROOM_DATA_DIR": str(work / name),
            "CHATROOM_ARCHIVER_CONSUMER": name,
            **extra,
        }

    redis = connect(REDIS_URL)
    engine = create_engine(DATABASE_URL)
    writer = StreamWriter(redis, client_id_ttl_s=3600)
    sending = True
    serial = 0

    async def produce() -> None:
        nonlocal serial
        while sending:
            events = []
            for _ in range(10):
                serial += 1
                events.append(MessageEvent(ROOM, AUTHOR, f"fleet {serial}", f"f-{serial}"))
            await asyncio.gather(*(writer.append(e) for e in events))
            await asyncio.sleep(0.02)

    takeovers: list[float] = []
    orphaned_counts: list[int] = []
    survivor = await _start(env("survivor"), work / "survivor.log")
    producer = asyncio.create_task(produce())
    try:
        for kill in range(args.kills):
            name = f"victim-{kill}"
            victim = await _start(
                env(name, CHATROOM_FAILPOINT="after_read", CHATROOM_FAILPOINT_AFTER="3"),
                work / f"{name}.log",
            )
            await asyncio.wait_for(victim.wait(), 120)
            died = time.monotonic()
            if victim.returncode != -signal.SIGKILL:
                raise SystemExit(f"{name} exited {victim.returncode}: see {work}")
            orphaned = await _pending_ids(redis, name)
            deadline = died + 120
            while await _pending_ids(redis, name) or not await _in_sql(engine, orphaned):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name}'s batch not adopted within 120 s: see {work}")
                await asyncio.sleep(0.02)
            takeovers.append(round(time.monotonic() - died, 2))
            orphaned_counts.append(len(orphaned))
            print(
                f"kill {kill + 1}: {len(orphaned)} entries adopted in {takeovers[-1]} s", flush=True
            )
    finally:
        sending = False
        await producer
        if survivor.returncode is None:
            survivor.send_signal(signal.SIGTERM)
            await asyncio.wait_for(survivor.wait(), 60)
        await writer.close()
        await redis.aclose()
        await engine.dispose()
    return {
        "kills": args.kills,
        "claim_idle_ms": args.claim_idle_ms,
        "block_ms": args.block_ms,
        "takeover_s": takeovers,
        "orphaned_entries": orphaned_counts,
        "median_s": statistics.median(takeovers),
        "max_s": max(takeovers),
        "stated_bound_s": round((1.5 * args.claim_idle_ms + args.block_ms) / 1000, 2),
        "messages": serial,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--claim-idle-ms", type=int, default=2000)
    parser.add_argument("--block-ms", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(uvloop.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
