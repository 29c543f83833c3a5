"""`chatroom archive [--once]`: the standalone archiver process.

Opens SQL (migrating only in embedded mode), refuses or warns about a Redis that could
lose acknowledged messages, serves Prometheus metrics when `metrics_port` is set, and
runs the archiver until SIGTERM or SIGINT, which finish the batch in hand and exit 0.
Redis or SQL unreachable at start is waited out like any later outage (logged once);
a wrong setup (schema out of date, persistence required and off) exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

import uvloop
from prometheus_client import start_http_server
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.archiver.failpoints import Failpoints, UnknownFailpoint
from chatroom.archiver.service import Archiver
from chatroom.backends import Backends, open_database
from chatroom.heap import settle_heap
from chatroom.outages import REDIS_DOWN, SQL_DOWN, when_reachable
from chatroom.redis_client import connect
from chatroom.settings import Settings
from chatroom.streams.persistence import PersistenceReport, enforce_persistence

log = logging.getLogger(__name__)


def run_archiver(settings: Settings, backends: Backends, *, once: bool) -> int:
    """Run until stopped (or, with `once`, until the backlog is drained); the exit code."""
    try:
        failpoints = Failpoints.from_env()  # the fault tests' crash points, if any
    except UnknownFailpoint as exc:
        log.error("%s", exc)
        return 2
    # On uvloop, as the app nodes (uvicorn's loop="uvloop"): the stdlib loop's selector,
    # transports and timers in Python were a tenth of the archiver's CPU per row.
    return uvloop.run(_archive(settings, backends, failpoints, once=once))


async def _archive(
    settings: Settings, backends: Backends, failpoints: Failpoints, *, once: bool
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _stopper(stop, signum))

    async def sql() -> AsyncEngine:
        return await open_database(settings, backends.database_url)

    engine = await when_reachable("SQL", sql, SQL_DOWN, stop, log)
    if engine is None:
        return 0
    try:

        async def redis_check() -> PersistenceReport:
            redis = connect(backends.redis_url)
            try:
                return await enforce_persistence(redis, strict=settings.redis_require_persistence)
            finally:
                await redis.aclose()

        if await when_reachable("Redis", redis_check, REDIS_DOWN, stop, log) is None:
            return 0
        if settings.metrics_port is not None:
            server, _ = start_http_server(settings.metrics_port, addr=settings.host)
            log.info("archiver metrics on http://%s:%d/metrics", settings.host, server.server_port)
        archiver = Archiver(settings, backends.redis_url, engine, failpoints=failpoints)
        settle_heap()
        if once:
            rows = await archiver.drain(stop)
            log.info("drained the backlog: %d rows archived", rows)
        else:
            await archiver.run(stop)
    finally:
        await engine.dispose()
    return 0


def _stopper(stop: asyncio.Event, signum: int) -> Callable[[], None]:
    def handle() -> None:
        if not stop.is_set():
            log.info("%s: finishing the batch in hand, then exiting", signal.Signals(signum).name)
        stop.set()

    return handle
