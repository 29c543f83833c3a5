"""Figures sampled while the campaign runs, which the checker cannot rebuild afterwards.

- backlog: entries appended to the room streams and not yet archived (over every room,
  the group's lag plus its pending entries), sampled each second; the report keeps the
  maximum and when it was.
- send to durable: from a message's first send until its row is in SQL (the durable
  history), for the newest acked message each second: a probe asks SQL for that exact
  row every quarter second until it is there. Probes still open at the end are left to
  the checker (an acked message missing from SQL is `lost` there).

The figures are facts, not verdicts: a fault that stalls SQL for a minute makes both
large, and the timeline says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis_asyncio
from bench.chaos.ledger import Ledger, Send
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chatroom import redis_keys

SAMPLE_EVERY_S = 1.0
POLL_EVERY_S = 0.25
QUERY_TIMEOUT_S = 2.0

_ROW = text(
    "SELECT 1 FROM messages m JOIN rooms r ON r.id = m.room_id"
    " WHERE r.slug = :slug AND m.stream_ms = :ms AND m.stream_seq = :seq"
)


@dataclass
class Figures:
    backlog_max: int = 0
    backlog_max_at: float = 0.0  # wall clock
    backlog_samples: int = 0
    to_sql_s: list[float] = field(default_factory=list)  # first send -> row in SQL
    open_probes: int = 0  # acked messages probed and not in SQL when the run ended

    def facts(self, started: float) -> dict[str, Any]:
        durable = sorted(self.to_sql_s)
        return {
            "backlog_max": self.backlog_max,
            "backlog_max_at_s": round(self.backlog_max_at - started, 1) if self.backlog_max else 0,
            "backlog_samples": self.backlog_samples,
            "send_to_sql_probes": len(durable) + self.open_probes,
            "send_to_sql_open": self.open_probes,
            "send_to_sql_p50_s": _quantile(durable, 0.5),
            "send_to_sql_p99_s": _quantile(durable, 0.99),
            "send_to_sql_max_s": round(durable[-1], 3) if durable else None,
        }


def send_to_ack_facts(ledger: Ledger) -> dict[str, Any]:
    """From first send to ack, over every acked message (resends and outages included)."""
    waits = sorted(
        s.acked_at - s.first_sent_at for s in ledger.sends.values() if s.acked_at is not None
    )
    return {
        "send_to_ack_p50_s": _quantile(waits, 0.5),
        "send_to_ack_p99_s": _quantile(waits, 0.99),
        "send_to_ack_max_s": round(waits[-1], 3) if waits else None,
    }


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


class Probe:
    """Samples the backlog and times acked messages into SQL until `stop` is set."""

    def __init__(self, ledger: Ledger, redis_url: str, database_url: str, rooms: list[str]):
        self.figures = Figures()
        self._ledger = ledger
        self._redis_url = redis_url
        self._database_url = database_url
        self._rooms = rooms
        self._open: list[Send] = []

    async def run(self, stop: asyncio.Event) -> None:
        logging.getLogger("asyncmy").setLevel(logging.ERROR)
        redis = redis_asyncio.Redis.from_url(
            self._redis_url, socket_timeout=QUERY_TIMEOUT_S, socket_connect_timeout=1
        )
        engine = create_async_engine(self._database_url, pool_pre_ping=True)
        try:
            await asyncio.gather(self._backlog(redis, stop), self._durable(engine, stop))
        finally:
            self.figures.open_probes = len(self._open)
            await redis.aclose()
            await engine.dispose()

    async def _backlog(self, redis: redis_asyncio.Redis, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                backlog = await asyncio.wait_for(self._sample(redis), QUERY_TIMEOUT_S)
                self.figures.backlog_samples += 1
                if backlog > self.figures.backlog_max:
                    self.figures.backlog_max, self.figures.backlog_max_at = backlog, time.time()
            await _sleep(stop, SAMPLE_EVERY_S)

    async def _sample(self, redis: redis_asyncio.Redis) -> int:
        async with redis.pipeline(transaction=False) as pipe:
            for room in self._rooms:
                pipe.xinfo_groups(redis_keys.room_stream(room))
            replies: Any = await pipe.execute(raise_on_error=False)
        backlog = 0
        for groups in replies:
            if isinstance(groups, Exception):
                continue  # no stream yet (or lost with Redis): nothing waits there
            for group in groups:
                # lag: entries not yet delivered to the group (None when Redis cannot tell
                # after a deletion; pending alone is then a floor).
                lag = group.get("lag")
                backlog += int(group["pending"]) + (int(lag) if lag is not None else 0)
        return backlog

    async def _durable(self, engine: AsyncEngine, stop: asyncio.Event) -> None:
        acks = self._ledger.acks
        next_pick = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_pick and acks:
                newest = acks[-1]
                if not self._open or self._open[-1] is not newest:
                    self._open.append(newest)
                next_pick = now + SAMPLE_EVERY_S
            if self._open:
                with contextlib.suppress(SQLAlchemyError, OSError, TimeoutError):
                    await asyncio.wait_for(self._poll(engine), QUERY_TIMEOUT_S)
            await _sleep(stop, POLL_EVERY_S)

    async def _poll(self, engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            still: list[Send] = []
            for send in self._open:
                assert send.id is not None
                ms, seq = send.id.split("-")
                keys = {"slug": send.room, "ms": int(ms), "seq": int(seq)}
                found = await conn.execute(_ROW, keys)
                if found.first() is None:
                    still.append(send)
                else:
                    self.figures.to_sql_s.append(time.time() - send.first_sent_at)
            self._open = still


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
