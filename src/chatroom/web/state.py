"""What every request and WebSocket of one app node shares, built by the app's lifespan.

Handlers reach it as `request.state.chat` (or `websocket.state.chat`): Starlette copies
the lifespan's state into every connection's scope, so there is no module global.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import HTTPConnection

from chatroom.history import History
from chatroom.settings import Settings
from chatroom.streams.persistence import PersistenceReport
from chatroom.streams.writer import StreamWriter
from chatroom.web.metrics import ArchiverStatusMetrics
from chatroom.web.worker_metrics import WorkerMetrics

if TYPE_CHECKING:
    from chatroom.accounts.service import Accounts
    from chatroom.hub.hub import Hub
    from chatroom.rooms.direct import DirectMessages
    from chatroom.rooms.directory import RoomDirectory
    from chatroom.store.search import MessageSearch

STATE_KEY = "chat"


@dataclass
class AppState:
    settings: Settings
    redis: Redis
    redis_url: str
    engine: AsyncEngine
    writer: StreamWriter
    history: History
    accounts: Accounts
    rooms: RoomDirectory
    dms: DirectMessages
    persistence: PersistenceReport
    search: MessageSearch
    # Set when the archiver runs in another process: its figures, read for /metrics.
    archiver_status_metrics: ArchiverStatusMetrics | None = None
    # Set in a worker of `serve --workers N`: /metrics shows every worker's figures.
    worker_metrics: WorkerMetrics | None = None
    # The realtime hub (chatroom.hub), set by the lifespan once it is started (before the
    # first request or socket is served); there is no hub before that.
    hub: Hub = field(init=False, repr=False, compare=False)


def app_state(conn: HTTPConnection) -> AppState:
    """The node's state, from a request or a WebSocket."""
    state: AppState = getattr(conn.state, STATE_KEY)
    return state
