"""The app factory: one FastAPI app per node, its state built by the lifespan.

Nothing here is a module global: `create_app` closes over its settings and backends, and
the lifespan hands the node's `AppState` to every request as `request.state.chat`
(Starlette's lifespan state). Tests build as many apps as they like.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from prometheus_client.registry import Collector

from chatroom import __version__
from chatroom.accounts.service import Accounts
from chatroom.backends import Backends, open_database
from chatroom.heap import settle_heap
from chatroom.history import History
from chatroom.redis_client import connect
from chatroom.rooms.direct import DirectMessages
from chatroom.rooms.directory import RoomDirectory
from chatroom.settings import Settings
from chatroom.store.history_pages import ArchivedPages
from chatroom.store.search import MessageSearch
from chatroom.streams.persistence import enforce_persistence
from chatroom.streams.writer import StreamWriter
from chatroom.web import (
    api_accounts,
    api_dms,
    api_moderation,
    api_operations,
    api_rooms,
    api_search,
    ws,
)
from chatroom.web.body_limit import BodyLimitMiddleware
from chatroom.web.client import DIST, WebClient
from chatroom.web.errors import install_error_handlers
from chatroom.web.metrics import (
    ArchiverStatusMetrics,
    HttpMetricsMiddleware,
    HubMetrics,
    register,
    unregister,
)
from chatroom.web.node_archiver import elected_archiver, running_archiver
from chatroom.web.security_headers import SecurityHeadersMiddleware
from chatroom.web.state import STATE_KEY, AppState
from chatroom.web.worker_metrics import HubMirror, WorkerMetrics, mirrored
from chatroom.web.ws_route import ChatroomApp

# In the folder a `serve --workers N` supervisor makes for its workers.
ARCHIVER_LOCK = "archiver.lock"
METRICS_FOLDER = "metrics"

log = logging.getLogger(__name__)

DESCRIPTION = """
The HTTP half of Chatroom's contract v1: accounts, rooms, history and operations.
Live messages, presence and typing go over the WebSocket at `/ws` (see docs/protocol.md).

Authenticate with the `chatroom_session` cookie set by `POST /api/login`, or send
`Authorization: Bearer <secret>` with an API token from `POST /api/tokens`.
Every error answer is `{"error": {"code": "...", "message": "..."}}`.
"""


def create_app(
    settings: Settings,
    backends: Backends,
    *,
    with_archiver: bool,
    workers_dir: Path | None = None,
    settle: bool = False,
) -> FastAPI:
    """`workers_dir`: this app is one worker of a `chatroom serve --workers N`, and that
    is the folder their supervisor made for them (web/workers.py): the archiver's
    election lock and the metrics files are there. `settle`: the app is its process's
    own (`chatroom serve`), which then settles its heap once started (heap.py); tests
    that build many apps in one process leave the collector alone."""
    client = WebClient(DIST)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, AppState]]:
        async with AsyncExitStack() as stack:
            state = await _open_state(stack, settings, backends)
            # The realtime hub starts here (it stops after the archiver, before the state).
            state.hub = await stack.enter_async_context(ws.running_hub(state))
            if workers_dir is None:
                stack.enter_context(_registered(HubMetrics(lambda: state.hub.stats)))
            else:
                mirror = HubMirror(lambda: state.hub.stats)
                await stack.enter_async_context(mirrored(mirror))
                state.worker_metrics = WorkerMetrics(workers_dir / METRICS_FOLDER, mirror)
            if not with_archiver:
                stack.enter_context(_archiver_status_metrics(state))
            elif workers_dir is None:
                await stack.enter_async_context(running_archiver(state))
            else:
                lock = workers_dir / ARCHIVER_LOCK
                await stack.enter_async_context(elected_archiver(state, lock))
            if settle:
                settle_heap()
            yield {STATE_KEY: state}

    app = ChatroomApp(  # FastAPI; /ws goes straight to its endpoint (web/ws_route.py)
        title="Chatroom",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    install_error_handlers(app, client.page)
    # Innermost first: a body is refused before anything reads it, and the refusal is
    # counted and carries the security headers like any answer.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.request_body_max_bytes,
        timeout_s=settings.request_body_timeout_s,
    )
    app.add_middleware(HttpMetricsMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    app.include_router(api_accounts.router)
    app.include_router(api_rooms.router)
    app.include_router(api_dms.router)
    app.include_router(api_moderation.router)
    app.include_router(api_search.router)
    app.include_router(api_operations.router)
    app.include_router(ws.router)  # /ws, the realtime endpoint
    client.mount(app)
    return app


async def _open_state(stack: AsyncExitStack, settings: Settings, backends: Backends) -> AppState:
    """Connect to Redis and SQL and build the services; the stack closes them."""
    redis = connect(backends.redis_url)
    stack.push_async_callback(redis.aclose)
    persistence = await enforce_persistence(
        redis, strict=settings.redis_require_persistence, ack_durability=settings.durability
    )
    engine = await open_database(
        settings, backends.database_url, schema_ready=backends.schema_ready
    )
    stack.push_async_callback(engine.dispose)
    history = History(redis, ArchivedPages(engine))
    # The writer retries a failed batch itself, on a client of its own without redis-py's
    # retries: it must know whether an attempt reached Redis (streams/writer.py).
    writer_redis = connect(backends.redis_url, retries=0, max_connections=8)
    stack.push_async_callback(writer_redis.aclose)
    writer = StreamWriter(
        writer_redis,
        client_id_ttl_s=settings.client_id_ttl_s,
        epochs=history.epochs,
    )
    stack.push_async_callback(writer.close)
    directory = RoomDirectory(engine, unknown_ttl_s=settings.unknown_room_cache_s)
    return AppState(
        settings=settings,
        redis=redis,
        redis_url=backends.redis_url,
        engine=engine,
        writer=writer,
        history=history,
        accounts=Accounts(settings, redis, engine),
        rooms=directory,
        dms=DirectMessages(engine, directory),
        persistence=persistence,
        search=MessageSearch(engine),
    )


@contextlib.contextmanager
def _archiver_status_metrics(state: AppState) -> Iterator[None]:
    collector = ArchiverStatusMetrics(state.redis, state.engine)
    with _registered(collector) as shown:
        if shown:
            state.archiver_status_metrics = collector
        yield


@contextlib.contextmanager
def _registered(collector: Collector) -> Iterator[bool]:
    """Show `collector` on /metrics while the app runs; yields False if its names are
    taken (an in-process archiver's own metrics, or another app in this process)."""
    shown = register(collector)
    try:
        yield shown
    finally:
        if shown:
            unregister(collector)
