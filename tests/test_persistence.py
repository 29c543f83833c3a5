"""The start-up check: could this Redis lose an acknowledged message?"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatroom.loopback_ports import free_port
from chatroom.redis_client import connect
from chatroom.streams.persistence import (
    PersistenceAtRisk,
    check_persistence,
    enforce_persistence,
)
from waiting import wait_until_sync

# Both tests talk to a Redis server process: the embedded one, or one of their own.
pytestmark = pytest.mark.processes


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture
def evicting_redis(tmp_path: Path) -> Iterator[str]:
    """A private redis-server without AOF and with an evicting memory policy."""
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "allkeys-lru",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_until_sync(lambda: _listening(port), 10, what=f"redis-server listens on port {port}")
    yield url
    server.terminate()
    server.wait()


async def test_embedded_server_is_durable(embedded_redis: str) -> None:
    client = connect(embedded_redis)
    report = await check_persistence(client)
    await client.aclose()
    assert report.persistence_ok and report.appendonly is True
    assert report.maxmemory_policy == "noeviction"


async def test_risky_redis_is_named_and_strict_mode_refuses(
    evicting_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(evicting_redis)
    try:
        report = await enforce_persistence(client, strict=False)
        assert not report.persistence_ok
        assert any("appendonly no" in p for p in report.problems)
        assert any("allkeys-lru" in p for p in report.problems)
        assert "acknowledged messages not yet archived are lost" in caplog.text
        with pytest.raises(PersistenceAtRisk, match="CHATROOM_REDIS_REQUIRE_PERSISTENCE"):
            await enforce_persistence(client, strict=True)
    finally:
        await client.aclose()
