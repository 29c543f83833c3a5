"""Real `chatroom serve` processes for HTTP and WebSocket contract tests.

`running_server(backend, tmp_path)` starts one app node on a free port of 127.0.0.1 with
the test's Redis and SQL, waits until it answers, and stops it (SIGTERM, then SIGKILL)
at the end. Its log (stdout and stderr) is kept in a file for assertions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from conftest import Backend

STARTUP_TIMEOUT_S = 30.0
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ChatServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30.0, **kwargs)


@asynccontextmanager
async def running_server(
    backend: Backend,
    log_dir: Path,
    *,
    archiver: bool = False,
    settings: dict[str, str] | None = None,
) -> AsyncIterator[ChatServer]:
    """One `chatroom serve` node; `settings` are CHATROOM_* overrides without the prefix."""
    port = free_port()
    env = backend.env()
    env.update({"CHATROOM_HOST": "127.0.0.1", "CHATROOM_PORT": str(port)})
    # Tests log in many times from one address; the throttling tests lower these again.
    env.update(
        {
            "CHATROOM_LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE": "10000",
            "CHATROOM_REGISTRATIONS_PER_ADDRESS_PER_HOUR": "10000",
            "CHATROOM_LOGIN_ATTEMPTS_PER_MINUTE": "1000",
            "CHATROOM_DATA_DIR": str(log_dir / f"data-{port}"),
        }
    )
    for name, value in (settings or {}).items():
        env[f"CHATROOM_{name.upper()}"] = value
    command = [sys.executable, "-m", "chatroom", "serve"]
    if not archiver:
        command.append("--no-archiver")
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=log_dir
        )
    server = ChatServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        await _wait_until_up(server)
        yield server
    finally:
        _stop(process)


async def _wait_until_up(server: ChatServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"the server exited at startup:\n{server.log()}")
            try:
                if (await client.get(f"{server.url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the server did not answer within {STARTUP_TIMEOUT_S} s:\n{server.log()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


async def register(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, **extra: str
) -> dict[str, object]:
    answer = await client.post(
        "/api/register", json={"username": username, "password": password, **extra}
    )
    assert answer.status_code == 201, answer.text
    user: dict[str, object] = answer.json()["user"]
    return user


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> dict[str, object]:
    answer = await client.post("/api/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    user: dict[str, object] = answer.json()["user"]
    return user
