"""Real services for the tests, chosen by CHATROOM_TEST_BACKENDS, and the fast loop.

`embedded`: the packaged Valkey server (one per test session) and a SQLite file per test.
`mariadb`: the machine's Redis and MariaDB, at CHATROOM_TEST_REDIS_URL (database 9 by
default, flushed per test) and CHATROOM_TEST_MARIADB_URL (database `chatroom_test` by
default, emptied per test). Every data-path test that takes the `backend`
fixture runs once per backend named in CHATROOM_TEST_BACKENDS (default: both).
Under pytest-xdist (`pytest -n N`, as `make test` runs it) worker n takes the Redis
database n above that URL's and the MariaDB database suffixed `_gw<n>`, and an embedded
Valkey of its own: no two workers share a database.

The factory fixtures (`chat_server`, `chat_app`, `signed_up`, `chat_socket`,
`stream_writer`) build app nodes, logged-in clients, sockets and stream writers for a
test and close them all at its end, last built first closed, whether it passed or not.

A test is `fast` (`make test-fast`, `pytest -m fast`) unless it takes one of the
service fixtures below or is marked `processes`; a fast test that starts a process or
opens a network connection fails at once, saying so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.domain.events import Author
from chatroom.embedded import EmbeddedRedis
from chatroom.history import History
from chatroom.hub.hub import Hub
from chatroom.hub.node import RoomAccess
from chatroom.hub.subscription import RoomRef
from chatroom.redis_client import connect
from chatroom.rooms.read_marks import ReadMarks
from chatroom.settings import Settings
from chatroom.store import migrate
from chatroom.store.counts import room_ids
from chatroom.store.database import create_engine, ensure_database
from chatroom.store.history_pages import ArchivedPages
from chatroom.store.tables import metadata
from chatroom.streams.writer import StreamWriter
from fake_transport import FakeTransport
from test_archiver_support import Archivers

if TYPE_CHECKING:
    from chat_apps import AppNode
    from chat_servers import ChatNode, ChatServer
    from ws_clients import ChatSocket


def _worker_number() -> int | None:
    """Which pytest-xdist worker runs this process (`make test` runs `pytest -n`): 0, 1, ...;
    None when pytest runs alone."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ...
    return int(worker.removeprefix("gw")) if worker else None


def _worker_redis(url: str, worker: int | None) -> str:
    """The Redis database of this worker: worker n takes the one n above the URL's."""
    if worker is None:
        return url
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or "0") + worker
    if database > 15:
        raise pytest.UsageError(
            f"pytest worker {worker} would use Redis database {database} (over 15): "
            "give CHATROOM_TEST_REDIS_URL a lower database, or run fewer workers"
        )
    return urlunsplit(parts._replace(path=f"/{database}"))


def _worker_mariadb(url: str, worker: int | None) -> str:
    """The MariaDB database of this worker: the URL's, suffixed `_gw<n>`."""
    if worker is None:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_gw{worker}").render_as_string(
        hide_password=False
    )


# Under pytest-xdist every worker has a Redis database and a MariaDB database of its own
# (and its own embedded Valkey, a session fixture): the workers' tests never meet.
MARIADB_URL = _worker_mariadb(
    os.environ.get(
        "CHATROOM_TEST_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306/chatroom_test"
    ),
    _worker_number(),
)
REDIS_URL = _worker_redis(
    os.environ.get("CHATROOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/9"), _worker_number()
)
BACKENDS = [
    b.strip() for b in os.environ.get("CHATROOM_TEST_BACKENDS", "embedded,mariadb").split(",")
]

# What the factory fixtures below give a test.
StartServer = Callable[..., Awaitable["ChatServer"]]
StartApp = Callable[..., Awaitable["AppNode"]]
SignUp = Callable[..., Awaitable[httpx.AsyncClient]]
OpenSocket = Callable[..., Awaitable["ChatSocket"]]
MakeWriter = Callable[..., StreamWriter]


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
    # Shared by the suite's embedded backend, which gives it a URL: write acks, as for
    # any configured Redis, so everysec (tests that need `always` set it themselves).
    server = EmbeddedRedis(tmp_path_factory.mktemp("embedded"), appendfsync="everysec")
    url = server.acquire()
    yield url
    server.stop()


@asynccontextmanager
async def _sql(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def _redis(url: str) -> AsyncIterator[Redis]:
    client = connect(url)
    try:
        yield client
    finally:
        await client.aclose()


_migrated: set[str] = set()


async def _reset_mariadb(url: str) -> None:
    if url not in _migrated:  # the first test on it: the schema afresh, by migrations
        await ensure_database(url)
        async with _sql(url) as engine:
            async with engine.begin() as conn:
                await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=0"))
                for table in [*reversed(metadata.sorted_tables), sa.table("alembic_version")]:
                    await conn.execute(sa.text(f"DROP TABLE IF EXISTS `{table.name}`"))
            await migrate.upgrade(engine)
        _migrated.add(url)
        return
    async with _sql(url) as engine, engine.begin() as conn:
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


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A clean Redis and a migrated, empty SQL database (but for the lobby room)."""
    if request.param == "embedded":
        redis_url = request.getfixturevalue("embedded_redis")
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'chatroom.sqlite3'}"
        async with _sql(database_url) as engine:
            await migrate.upgrade(engine)
    elif request.param == "mariadb":
        redis_url, database_url = REDIS_URL, MARIADB_URL
        await _reset_mariadb(database_url)
    else:
        raise pytest.UsageError(f"unknown backend {request.param!r} in CHATROOM_TEST_BACKENDS")
    async with _redis(redis_url) as client:
        await client.flushdb()
    return Backend(request.param, redis_url, database_url)


@pytest.fixture
async def redis(backend: Backend) -> AsyncIterator[Redis]:
    async with _redis(backend.redis_url) as client:
        yield client


@pytest.fixture
async def engine(backend: Backend) -> AsyncIterator[AsyncEngine]:
    async with _sql(backend.database_url) as sql:
        yield sql


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
STOP_BOUND_S = 30.0


def _stream_writer(redis: Redis) -> StreamWriter:
    return StreamWriter(redis, client_id_ttl_s=3600)


@pytest.fixture
async def make_hub(backend: Backend, engine: AsyncEngine) -> AsyncIterator[HubFactory]:
    """Builds started hubs, each with its own Redis clients, stream writer and history;
    at the end the clients of their sockets leave (each socket must end then), and the
    hubs are stopped and all that was built is closed.

    `make_hub(access=None, *, writer_url=None, blocking_url=None, make_writer=None,
    make_history=None, **settings)`: `access` defaults to the lobby, open to all;
    `writer_url` puts the writer on another Redis (a dead one, say), `blocking_url` the
    node's stream reads and pub/sub (a proxy that stalls, say); `make_writer(redis)` and
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
        blocking_url: str | None = None,
        make_writer: Callable[[Redis], StreamWriter] | None = None,
        make_history: Callable[[Redis, ArchivedPages], History] | None = None,
        **settings: Any,
    ) -> HubNode:
        redis = connect(backend.redis_url)
        blocking = connect(blocking_url or backend.redis_url, blocking=True)
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
            read_marks=ReadMarks(engine, flush_s=0.05),
        )
        node = HubNode(hub, writer, access or lobby_only)

        async def close() -> None:
            try:
                for transport in node.sockets:
                    transport.leave()
                await asyncio.wait_for(asyncio.gather(*node.serving), LEAVE_TIMEOUT_S)
                await _bounded(hub.stop(), "the hub's stop")
            finally:
                for task in node.serving:
                    task.cancel()
                await _bounded(writer.close(), "the stream writer's close")
                for client in {redis, blocking, writer_redis}:
                    await _bounded(client.aclose(), "a Redis client's close")

        closers.append(close)
        await hub.start()
        return node

    try:
        yield make
    finally:
        for close in reversed(closers):
            await close()


async def _bounded(step: Awaitable[None], what: str) -> None:
    """A teardown step that must not hang the test: once, under a parallel `make test`
    beside a chaos campaign, a hub's teardown did not end within pytest's 120 s
    (2026-11-30, test_hub.py's slow subscriber; not reproduced alone). Past the bound it
    logs where every task is waiting, for whoever looks into it next."""
    try:
        await asyncio.wait_for(step, STOP_BOUND_S)
    except TimeoutError:
        stacks = [
            f"{task.get_name()}: {task.get_stack(limit=3)}"
            for task in asyncio.all_tasks()
            if task is not asyncio.current_task()
        ]
        logging.getLogger(__name__).warning(
            "%s did not end in %s s; tasks: %s", what, STOP_BOUND_S, stacks
        )


@pytest.fixture
async def closing() -> AsyncIterator[AsyncExitStack]:
    """What a test's factory fixtures built, closed at its end in reverse order."""
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
def chat_server(backend: Backend, tmp_path: Path, closing: AsyncExitStack) -> StartServer:
    """Starts `chatroom serve` processes (`chat_servers.running_server`): for the proofs
    that need the real process (start-up, signals, several nodes, its log)."""
    from chat_servers import running_server

    async def start(
        *, archiver: bool = False, settings: dict[str, str] | None = None
    ) -> ChatServer:
        node = running_server(backend, tmp_path, archiver=archiver, settings=settings)
        return await closing.enter_async_context(node)

    return start


@pytest.fixture
def chat_app(backend: Backend, tmp_path: Path, closing: AsyncExitStack) -> StartApp:
    """Starts app nodes in the test's process (`chat_apps.running_app`): for what needs
    the app but not a process of its own (error paths, refusals, the rooms API)."""
    from chat_apps import running_app

    async def start(*, settings: dict[str, str] | None = None) -> AppNode:
        node = running_app(backend, tmp_path / "app-data", settings=settings)
        return await closing.enter_async_context(node)

    return start


@pytest.fixture
def signed_up(closing: AsyncExitStack) -> SignUp:
    """An HTTP client of a new user on a node, logged in (its cookie jar holds the
    session); `log_in=False`: registered only."""
    from chat_servers import login, register

    async def sign_up(
        node: ChatNode, username: str, *, log_in: bool = True, **extra: str
    ) -> httpx.AsyncClient:
        client = await closing.enter_async_context(node.client())
        await register(client, username, **extra)
        if log_in:
            await login(client, username)
        return client

    return sign_up


@pytest.fixture
def chat_socket(closing: AsyncExitStack) -> OpenSocket:
    """A WebSocket to a node (`ws_clients.open_socket`), closed at the end."""
    from ws_clients import open_socket

    async def open_(
        node: ChatNode, client: httpx.AsyncClient | None = None, **options: Any
    ) -> ChatSocket:
        opened = await open_socket(node, client, **options)
        closing.push_async_callback(opened.close)
        return opened

    return open_


@pytest.fixture
def stream_writer(redis: Redis, closing: AsyncExitStack) -> MakeWriter:
    """A `StreamWriter` on the test's Redis (or on `client`), closed at the end."""

    def build(
        client: Redis | None = None, *, client_id_ttl_s: int = 60, **options: Any
    ) -> StreamWriter:
        writer = StreamWriter(client or redis, client_id_ttl_s=client_id_ttl_s, **options)
        closing.push_async_callback(writer.close)
        return writer

    return build


# Taking any of these makes a test not fast: they are Redis, SQL or processes.
SERVICE_FIXTURES = frozenset(
    {"backend", "redis", "engine", "embedded_redis", "python", "chat_server", "chat_app"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        needs = SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if not needs and item.get_closest_marker("processes") is None:
            item.add_marker(pytest.mark.fast)


@pytest.fixture(autouse=True)
def _fast_tests_stay_in_process(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fast test may start no process and open no network connection: it would need
    what `make test-fast` promises not to need (and could hang on it)."""
    if request.node.get_closest_marker("fast") is None:
        return

    def refuse(what: str) -> Callable[..., NoReturn]:
        def refused(*_args: object, **_kwargs: object) -> NoReturn:
            pytest.fail(
                f"a fast test {what}: take the `backend` fixture or mark it "
                "`@pytest.mark.processes` (tests/conftest.py)",
                pytrace=False,
            )

        return refused

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse("started a process"))
    monkeypatch.setattr(socket.socket, "connect", refuse("opened a network connection"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("opened a network connection"))
