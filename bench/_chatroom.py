"""Chatroom as a bench target: fresh backends, the server processes, accounts, bot tokens.

The bench runs Chatroom in its production shape: the machine's Redis (database 13) and
MariaDB (database `chatroom_bench_fanout`, dropped and migrated afresh on every run), an
app node started with `chatroom serve --no-archiver` and a separate `chatroom archive`
process. Accounts are made through the public HTTP API (register, login, POST /api/tokens)
and every bench socket authenticates its upgrade with `Authorization: Bearer <secret>`.
`BENCH_REDIS_URL` and `BENCH_DATABASE` move both elsewhere: two benches on one machine
(bench/ingest.py uses the same two) must not flush and drop each other's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import redis.asyncio as redis_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from _servers import REPO_DIR, Server, ServerSet
from chatroom.loopback_ports import free_port
from chatroom.settings import Settings

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
MARIADB_SERVER = "mysql+asyncmy://root@127.0.0.1:3306"
DATABASE = os.environ.get("BENCH_DATABASE", "chatroom_bench_fanout")
DATABASE_URL = f"{MARIADB_SERVER}/{DATABASE}"
PASSWORD = "bench-password-1"


class SetupFailed(Exception):
    """Chatroom refused a setup request the bench depends on."""


async def flush_bench_redis() -> None:
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


async def drop_bench_database() -> None:
    # MariaDB's note "database doesn't exist" is logged by asyncmy; that is the point here.
    logging.getLogger("asyncmy").setLevel(logging.ERROR)
    engine = create_async_engine(f"{MARIADB_SERVER}/")
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"DROP DATABASE IF EXISTS `{DATABASE}`"))
    finally:
        await engine.dispose()


_RUN = {"redis_url": REDIS_URL}


def use_redis(url: str) -> None:
    """Run Chatroom on `url` instead of REDIS_URL (a cluster of the bench's own)."""
    _RUN["redis_url"] = url


def chatroom_env(data_dir: Path, *, connections_per_user: int) -> dict[str, str]:
    wanted = {
        "redis_url": _RUN["redis_url"],
        "database_url": DATABASE_URL,
        "data_dir": str(data_dir),
        "log_level": "WARNING",
        # The bench measures throughput, not the abuse limits: lift them far away. Every
        # bench account is made from 127.0.0.1, which the address throttles would stop.
        "send_rate_per_s": "1000000",
        "send_burst": "1000000",
        "max_connections_per_user": str(connections_per_user),
        "registrations_per_address_per_hour": "100000",
        "login_attempts_per_minute": "100000",
        "login_attempts_per_address_per_minute": "100000",
        # Every frame still goes through its connection's bucket (the cost is measured);
        # only its limits are lifted. Every bench socket comes from 127.0.0.1.
        "frame_rate_per_s": "1000000",
        "frame_burst": "1000000",
        "max_connections": "1000000",
        "max_connections_per_address": "1000000",
        "room_creations_per_hour": "100000",
        "rooms_per_user_max": "100000",
    }
    # Settings refuses unknown CHATROOM_* names: pass only those this version has.
    known = Settings.model_fields
    return {f"CHATROOM_{name.upper()}": value for name, value in wanted.items() if name in known}


async def fresh_backends(env: dict[str, str]) -> None:
    """Empty Redis db 13 (when the run uses it: not the embedded Valkey nor a cluster
    of its own, which start empty) and a newly migrated MariaDB database."""
    if env.get("CHATROOM_REDIS_URL") == REDIS_URL:
        await flush_bench_redis()
    await drop_bench_database()
    await _chatroom_command(env, "db", "upgrade")


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("CHATROOM_")}


def start_chatroom(
    servers: ServerSet, log_dir: Path, env: dict[str, str], *, archiver: str, workers: int = 1
) -> tuple[Server, Server | None]:
    """The app node (`workers` processes on its port), and the archiver: `separate` (own
    process) or `inprocess` (in one of the workers)."""
    clean = {**_base_env(), **env}
    app = start_node(servers, log_dir, env, archiver=archiver == "inprocess", workers=workers)
    archive = None
    if archiver == "separate":
        archive = Server(
            "chatroom-archiver",
            [sys.executable, "-m", "chatroom", "archive"],
            env=clean,
            log_dir=log_dir,
        )
        archive.env = clean
        servers.add(archive)
    return app, archive


def start_node(
    servers: ServerSet,
    log_dir: Path,
    env: dict[str, str],
    *,
    archiver: bool = False,
    workers: int = 1,
    name: str = "chatroom",
) -> Server:
    """One more app node (`chatroom serve`, `workers` processes) on a port of its own:
    several share the Redis and the SQL database of `env`, as nodes behind a proxy do."""
    port = free_port()
    argv = [sys.executable, "-m", "chatroom", "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(workers)]
    if not archiver:
        argv.append("--no-archiver")
    clean = {**_base_env(), **env}
    app = Server(name, argv, env=clean, log_dir=log_dir, port=port)
    app.env = clean
    servers.add(app)
    return app


async def wait_healthy(app: Server, timeout: float = 120.0) -> None:
    """Until /healthz answers: with `--workers`, the port listens before the workers
    (each a fresh interpreter) accept."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient(timeout=5.0) as client:
        while True:
            app.check_alive()
            try:
                if (await client.get(f"http://127.0.0.1:{app.port}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise SetupFailed(f"{app.name} did not answer /healthz within {timeout:.0f} s")
            await asyncio.sleep(0.2)


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, object]) -> httpx.Response:
    """POST, waiting out throttling (429 + Retry-After) a bounded number of times."""
    for _ in range(20):
        response = await client.post(path, json=body)
        if response.status_code != 429:
            return response
        await asyncio.sleep(min(float(response.headers.get("retry-after", "1")), 10.0))
    raise SetupFailed(f"POST {path} still throttled after 20 tries")


async def bot_token(base_url: str, username: str, rooms: tuple[str, ...] = ()) -> str:
    """Register `username` (or reuse it), log in, create `rooms`, and an API token: its secret."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        registered = await _post(
            client, "/api/register", {"username": username, "password": PASSWORD}
        )
        if registered.status_code not in (201, 409):
            raise SetupFailed(f"register {username}: {registered.status_code} {registered.text}")
        login = await _post(client, "/api/login", {"username": username, "password": PASSWORD})
        if login.status_code != 200:
            raise SetupFailed(f"login {username}: {login.status_code} {login.text}")
        for slug in rooms:
            created = await _post(client, "/api/rooms", {"slug": slug, "title": f"Bench {slug}"})
            if created.status_code not in (200, 201, 409):
                raise SetupFailed(f"create room {slug}: {created.status_code} {created.text}")
        token = await _post(client, "/api/tokens", {"name": "bench"})
        if token.status_code not in (200, 201):
            raise SetupFailed(f"token for {username}: {token.status_code} {token.text}")
        return str(token.json()["token"]["secret"])


async def archive_status(env: dict[str, str]) -> dict[str, object]:
    """`chatroom status --json` of the bench backends."""
    import json

    found: dict[str, object] = json.loads(await _chatroom_command(env, "status", "--json"))
    return found


async def _chatroom_command(env: dict[str, str], *args: str) -> str:
    """Run `python -m chatroom ARGS` on the bench backends; its stdout, or SetupFailed."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "chatroom", *args],
        env={**_base_env(), **env},
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        reason = done.stderr.strip() or done.stdout
        raise SetupFailed(f"chatroom {' '.join(args)} failed: {reason}")
    return done.stdout
