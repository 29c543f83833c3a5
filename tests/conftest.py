"""Real services for the tests, chosen by CHATROOM_TEST_BACKENDS.

`embedded`: the packaged Valkey server (one per test session) and a SQLite file per test.
`mariadb`: the machine's Redis (database 9, flushed per test) and MariaDB (database
`chatroom_test`, emptied per test). Every data-path test that takes the `backend`
fixture runs once per backend named in CHATROOM_TEST_BACKENDS (default: both).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.domain.events import Author
from chatroom.embedded import EmbeddedRedis
from chatroom.history import History
from chatroom.hub.hub import Hub
from chatroom.hub.session import RoomAccess
from chatroom.hub.subscription import RoomRef
from chatroom.settings import Settings
from chatroom.store import migrate
from chatroom.store.counts import room_ids
from chatroom.store.database import create_engine, ensure_database
from chatroom.store.history_pages import ArchivedPages
from chatroom.store.tables import metadata
from chatroom.streams.connection import connect
from chatroom.streams.writer import StreamWriter
from fake_transport import FakeTransport
from test_archiver_support import Archivers

MARIADB_URL = os.environ.get(
    "CHATROOM_TEST_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306/chatroom_test"
)
REDIS_URL = os.environ.get("CHATROOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
BACKENDS = [
    b.strip() for b in os.environ.get("CHATROOM_TEST_BACKENDS", "embedded,mariadb").split(",")
]


@dataclass(frozen=True)
class Backend:
    """Where one test's Redis and SQL are."""

    name: str
    redis_url: str
    database_url: str

    def env(self) -> dict[str, str]:
        """Environment for a `chatroom` subprocess on this backend."""
        # CHATROOM_TEST_* are the tests' own: `chatroom` refuses unknown CHATROOM_ names.
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("CHATROOM_TEST_")},
            "CHATROOM_REDIS_URL": self.redis_url,
            "CHATROOM_DATABASE_URL": self.database_url,
        }


@pytest.fixture(scope="session")
def embedded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("embedded"))
    url = server.acquire()
    yield url
    server.stop()


_migrated: set[str] = set()


async def _reset_mariadb(url: str) -> None:
    if url not in _migrated:
        await ensure_database(url)
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=0"))
                for table in [*reversed(metadata.sorted_tables), sa.table("alembic_version")]:
                    await conn.execute(sa.text(f"DROP TABLE IF EXISTS `{table.name}`"))
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()
        _migrated.add(url)
        return
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=0"))
            for table in metadata.sorted_tables:
                await conn.execute(sa.text(f"TRUNCATE TABLE `{table.name}`"))
            await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=1"))
            await conn.execute(
                sa.text(
                    "INSERT INTO rooms (slug, title, is_private, created_at) "
                    "VALUES ('lobby', 'Lobby', 0, UTC_TIMESTAMP(3))"
                )
            )
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A clean Redis and a migrated, empty SQL database (but for the lobby room)."""
    if request.param == "embedded":
        redis_url = request.getfixturevalue("embedded_redis")
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'chatroom.sqlite3'}"
        engine = create_engine(database_url)
        await migrate.upgrade(engine)
        await engine.dispose()
    elif request.param == "mariadb":
        redis_url, database_url = REDIS_URL, MARIADB_URL
        await _reset_mariadb(database_url)
    else:
        raise pytest.UsageError(f"unknown backend {request.param!r} in CHATROOM_TEST_BACKENDS")
    client = connect(redis_url)
    await client.flushdb()
    await client.aclose()
    yield Backend(request.param, redis_url, database_url)


@pytest.fixture
async def redis(backend: Backend) -> AsyncIterator[Redis]:
    client = connect(backend.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def engine(backend: Backend) -> AsyncIterator[AsyncEngine]:
    sql = create_engine(backend.database_url)
    yield sql
    await sql.dispose()


@pytest.fixture
async def archivers(
    backend: Backend, engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[Archivers]:
    """Builds archivers on this test's backend; those still running at its end are
    stopped and waited for."""
    factory = Archivers(backend.redis_url, engine, tmp_path)
    yield factory
    await factory.close()


@pytest.fixture
def python() -> str:
    """The interpreter for `python -m chatroom` subprocesses."""
    return sys.executable


@dataclass
class HubNode:
    """One app node's hub on the test's backend; its sockets are fake transports."""

    hub: Hub
    writer: StreamWriter
    access: RoomAccess
    sockets: list[FakeTransport] = field(default_factory=list)
    serving: list[asyncio.Task[None]] = field(default_factory=list)  # one per socket

    def connect(self, user: Author) -> FakeTransport:
        """A socket of `user`, served by the hub until it leaves (or the test ends)."""
        transport = FakeTransport()
        self.sockets.append(transport)
        self.serving.append(asyncio.create_task(self.hub.serve(transport, user, self.access)))
        return transport


HubFactory = Callable[..., Awaitable[HubNode]]
# How long the sockets a test left open may take to end once their clients leave.
LEAVE_TIMEOUT_S = 10.0


def _stream_writer(redis: Redis) -> StreamWriter:
    return StreamWriter(redis, client_id_ttl_s=3600)


@pytest.fixture
async def make_hub(backend: Backend, engine: AsyncEngine) -> AsyncIterator[HubFactory]:
    """Builds started hubs, each with its own Redis clients, stream writer and history;
    at the end the clients of their sockets leave (each socket must end then), and the
    hubs are stopped and all that was built is closed.

    `make_hub(access=None, *, writer_url=None, make_writer=None, make_history=None,
    **settings)`: `access` defaults to the lobby, open to all; `writer_url` puts the
    writer on another Redis (a dead one, say); `make_writer(redis)` and
    `make_history(redis, archive)` build instrumented ones.
    """
    closers: list[Callable[[], Awaitable[None]]] = []
    lobby = RoomRef((await room_ids(engine))["lobby"], "lobby", False)

    async def lobby_only(_user: Author, slug: str) -> RoomRef | None:
        return lobby if slug == "lobby" else None

    async def make(
        access: RoomAccess | None = None,
        *,
        writer_url: str | None = None,
        make_writer: Callable[[Redis], StreamWriter] | None = None,
        make_history: Callable[[Redis, ArchivedPages], History] | None = None,
        **settings: Any,
    ) -> HubNode:
        redis = connect(backend.redis_url)
        blocking = connect(backend.redis_url, blocking=True)
        writer_redis = connect(writer_url) if writer_url else redis
        writer = (make_writer or _stream_writer)(writer_redis)
        history = (make_history or History)(redis, ArchivedPages(engine))
        hub = Hub(
            settings=Settings(
                redis_url=backend.redis_url, database_url=backend.database_url, **settings
            ),
            redis=redis,
            blocking_redis=blocking,
            writer=writer,
            history=history,
        )
        node = HubNode(hub, writer, access or lobby_only)

        async def close() -> None:
            try:
                for transport in node.sockets:
                    transport.leave()
                await asyncio.wait_for(asyncio.gather(*node.serving), LEAVE_TIMEOUT_S)
                await hub.stop()
            finally:
                for task in node.serving:
                    task.cancel()
                await writer.close()
                for client in {redis, blocking, writer_redis}:
                    await client.aclose()

        closers.append(close)
        await hub.start()
        return node

    try:
        yield make
    finally:
        for close in reversed(closers):
            await close()
