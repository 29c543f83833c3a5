"""Real `chatroom serve` processes for HTTP and WebSocket contract tests.

`running_server(backend, tmp_path)` starts one app node on a free port of 127.0.0.1 with
the test's Redis and SQL, waits until it answers, and stops it (SIGTERM, then SIGKILL)
at the end. Its log (stdout and stderr) is kept in a file for assertions.
Tests take it from the `chat_server` factory fixture (conftest), which stops what it
started; `chat_apps.running_app` is the same node in the test's own process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from chatroom.loopback_ports import free_port
from waiting import WaitTimeout, wait_until

__all__ = ["free_port"]  # the tests that start nodes take ports from here too

if TYPE_CHECKING:
    from conftest import Backend

STARTUP_TIMEOUT_S = 30.0
PASSWORD = "correct horse battery"
# Tests log in many times from one address; the throttling tests lower these again.
TEST_LIMITS = {
    "login_attempts_per_address_per_minute": "10000",
    "registrations_per_address_per_hour": "10000",
    "login_attempts_per_minute": "1000",
    "room_creations_per_hour": "10000",
}


@dataclass
class ChatNode:
    """An app node answering at `url`, in a process of its own or in the test's."""

    url: str

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30.0, **kwargs)


@dataclass
class ChatServer(ChatNode):
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


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
    env["CHATROOM_DATA_DIR"] = str(log_dir / f"data-{port}")
    for name, value in {**TEST_LIMITS, **(settings or {})}.items():
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
    async with httpx.AsyncClient(timeout=2.0) as client:

        async def answers() -> bool:
            if server.process.poll() is not None:
                raise RuntimeError(f"the server exited at startup:\n{server.log()}")
            try:
                return (await client.get(f"{server.url}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        try:
            await wait_until(answers, STARTUP_TIMEOUT_S, what="/healthz answers", interval=0.1)
        except WaitTimeout as exc:
            raise RuntimeError(f"{exc}; the server's log:\n{server.log()}") from None


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


def api_error(answer: httpx.Response) -> dict[str, str]:
    """The `{"error": {"code", "message"}}` body every refusal has, and nothing else."""
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return dict(body["error"])
