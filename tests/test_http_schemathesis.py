"""Schemathesis against the OpenAPI document of a real `chatroom serve`: generated and
mutated requests to every operation, and not one 5xx answer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from redis.asyncio import Redis

from chat_servers import login, register, running_server
from chatroom.domain.events import Author, MessageEvent
from chatroom.streams.writer import StreamWriter
from conftest import Backend

SCHEMATHESIS = str(Path(sys.executable).with_name("st"))


async def test_no_server_error_for_any_generated_request(
    backend: Backend, tmp_path: Path, redis: Redis
) -> None:
    async with running_server(backend, tmp_path) as server, server.client() as client:
        # Data for the operations to find: an admin with a token, rooms, messages.
        admin = await register(client, "admin_user")
        await login(client, "admin_user")
        secret = (await client.post("/api/tokens", json={"name": "fuzz"})).json()["token"]["secret"]
        await client.post("/api/rooms", json={"slug": "private-one", "title": "P", "private": True})
        await client.post("/api/rooms", json={"slug": "public-one", "title": "Public"})
        writer = StreamWriter(redis, client_id_ttl_s=60)
        author = Author(int(str(admin["id"])), "admin_user", "admin_user")
        for number in range(20):
            await writer.append(MessageEvent("lobby", author, f"hello {number}", f"c{number}"))
        await writer.close()

        run = subprocess.run(
            [
                SCHEMATHESIS,
                "run",
                f"{server.url}/openapi.json",
                "--header",
                f"Authorization: Bearer {secret}",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "25",
                "--workers",
                "2",
                "--generation-database",
                "none",
                "--no-color",
                "--seed",
                "20261127",
                # Revoking the run's own token would leave everything after it a 401.
                "--exclude-path",
                "/api/tokens/{token_id}",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=100,
            check=False,
        )
        output = run.stdout + run.stderr
        assert run.returncode == 0, output
        assert "passed" in output and "failed" not in output.lower().split("summary")[-1], output
        assert " 500 " not in server.log() and "Traceback" not in server.log(), server.log()
