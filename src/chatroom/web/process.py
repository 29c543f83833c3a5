"""`chatroom serve`: one app node under uvicorn (uvloop, httptools, websockets), or N
(`--workers`, web/workers.py).

Before uvicorn starts, a preflight opens Redis and SQL once, so that a fixable problem
(no persistence in strict mode, schema out of date, a backend unreachable) reaches the
operator as the CLI's one-line explanation rather than a lifespan traceback.
On SIGTERM or SIGINT uvicorn stops accepting, lets requests finish (at most
GRACEFUL_SHUTDOWN_S), and then the lifespan stops the archiver and closes connections.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn

from chatroom.backends import Backends, open_database
from chatroom.redis_client import connect
from chatroom.settings import Settings
from chatroom.streams.persistence import (
    DurabilityUnavailable,
    check_persistence,
    enforce_persistence,
    fsync_refusal,
)
from chatroom.web.app import create_app
from chatroom.web.connection_guard import ConnectionGuard, trusted_networks
from chatroom.web.http_protocol import GuardedHttpToolsProtocol, NodeConfig
from chatroom.web.workers import run_workers, worker_app, worker_count
from chatroom.web.ws_protocol import ChatroomWebSocketProtocol

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_S = 10
WORKER_HEALTHCHECK_S = 30


async def _preflight(settings: Settings, backends: Backends) -> None:
    redis = connect(backends.redis_url)
    try:
        await redis.ping()
        # Refusals only (the lifespan warns, once): fsync that this Redis cannot honour,
        # and, in strict mode, any risk.
        report = await check_persistence(redis, settings.durability)
        refusal = fsync_refusal(report)
        if refusal is not None:
            raise DurabilityUnavailable(refusal)
        if settings.redis_require_persistence:
            await enforce_persistence(redis, strict=True, ack_durability=settings.durability)
    finally:
        await redis.aclose()
    engine = await open_database(settings, backends.database_url)
    await engine.dispose()


def uvicorn_config(
    settings: Settings, backends: Backends, *, with_archiver: bool, settle: bool = False
) -> uvicorn.Config:
    """`settle`: the node is its process's own (heap.py); not in tests' shared processes."""
    app = create_app(settings, backends, with_archiver=with_archiver, settle=settle)
    return node_config(settings, app)


def node_config(settings: Settings, app: Any, **options: Any) -> NodeConfig:
    """uvicorn's configuration of an app node serving `app` (or, with `factory=True`,
    the app `app()` builds: a worker's, web/workers.py)."""
    trusted_proxies = settings.forwarded_allow_ips
    guard = ConnectionGuard(
        max_total=settings.max_connections,
        max_per_address=settings.max_connections_per_address,
        trusted=trusted_networks(trusted_proxies),
    )
    return NodeConfig(
        app,
        # Slowloris: connections counted and capped, headers bounded in time and size.
        guard=guard,
        header_timeout_s=settings.request_header_timeout_s,
        header_max_bytes=settings.request_header_max_bytes,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=GuardedHttpToolsProtocol,
        ws=ChatroomWebSocketProtocol,  # uvicorn's websockets-sansio, plus `send_wire`
        ws_max_size=settings.frame_max_bytes,
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_timeout_s,
        ws_per_message_deflate=False,
        lifespan="on",
        # X-Forwarded-For/-Proto only from configured proxies: otherwise any client could
        # pick the address its login attempts are counted against.
        proxy_headers=trusted_proxies is not None,
        forwarded_allow_ips=trusted_proxies,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        # Logging is configured by the CLI; uvicorn's loggers propagate to it.
        log_config=None,
        **options,
    )


def run_server(settings: Settings, backends: Backends, *, with_archiver: bool) -> None:
    """One app node, or with `workers` above 1 that many on one port (web/workers.py)."""
    asyncio.run(_preflight(settings, backends))
    count = worker_count(settings.workers)
    if count > 1:
        app = worker_app(settings, backends, with_archiver=with_archiver)
        config = node_config(
            settings,
            app,
            factory=True,
            workers=count,
            # A worker answers the supervisor's pings once it has imported everything:
            # seconds on a loaded machine. One that does not answer in time is killed.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
        )
        run_workers(config)
        return
    node = uvicorn_config(settings, backends, with_archiver=with_archiver, settle=True)
    server = uvicorn.Server(node)
    server.run()
    if not server.started:
        raise SystemExit(1)
