"""The embedded Valkey server's lifecycle: start, share, die with its owner, keep data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis as sync_redis

from chatroom.embedded import EmbeddedRedis
from waiting import wait_until_sync

# Every test here starts the packaged Valkey server.
pytestmark = pytest.mark.processes

OWNER = """
import sys, time
from pathlib import Path
from chatroom.embedded import EmbeddedRedis
server = EmbeddedRedis(Path(sys.argv[1]))
server.acquire()
print(server.url, server.process.pid, flush=True)
time.sleep(120)  # not a wait: the owner lives until the test kills it
"""


def _start_owner(data_dir: Path) -> tuple[subprocess.Popen[str], str, int]:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    url, pid = owner.stdout.readline().split()
    return owner, url, int(pid)


def _ping(url: str) -> bool:
    client = sync_redis.Redis.from_url(url)
    try:
        return bool(client.ping())
    finally:
        client.close()


def _stop_owner(owner: subprocess.Popen[str]) -> None:
    owner.kill()
    owner.wait()
    if owner.stdout is not None:
        owner.stdout.close()


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0): it is gone once its state says so.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_starts_with_aof_in_the_data_folder(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    url = server.acquire()
    try:
        client = sync_redis.Redis.from_url(url, decode_responses=True)
        assert client.ping()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert (tmp_path / "redis" / "appendonlydir").is_dir()
        client.close()
    finally:
        server.stop()
    assert not (tmp_path / "redis" / "embedded-redis.json").exists()


def test_a_second_process_uses_the_running_server(tmp_path: Path) -> None:
    owner, url, server_pid = _start_owner(tmp_path)
    try:
        second = EmbeddedRedis(tmp_path)
        assert second.acquire() == url
        assert not second.owner
        second.stop()  # not the owner: stopping does nothing to the server
        assert _ping(url)
        # The CLI of the same data folder shares it too, and leaves it running.
        env = {**os.environ, "CHATROOM_DATA_DIR": str(tmp_path)}
        for key in ("CHATROOM_REDIS_URL", "CHATROOM_DATABASE_URL"):
            env.pop(key, None)
        shown = subprocess.run(
            [sys.executable, "-m", "chatroom", "status", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        redis = json.loads(shown.stdout)["redis"]
        assert redis["persistence_ok"] is True
        # The embedded default: acks wait for the fsync (appendfsync always), and status
        # says so.
        assert redis["ack_durability"] == "fsync" and redis["appendfsync"] == "always"
        assert redis["durable_against_kill"] is True
        assert _ping(url)
        assert (
            json.loads((tmp_path / "redis" / "embedded-redis.json").read_text())["pid"]
            == server_pid
        )
    finally:
        _stop_owner(owner)
    wait_until_sync(lambda: _dead(server_pid), 10, what="the embedded server stopped")


def test_kill_9_of_the_owner_leaves_no_server_and_data_survives(tmp_path: Path) -> None:
    owner, url, server_pid = _start_owner(tmp_path)
    client = sync_redis.Redis.from_url(url)
    ids = [client.xadd("chatroom:room:{lobby}:stream", {"event": f"m{i}"}) for i in range(100)]
    client.close()
    owner.send_signal(signal.SIGKILL)
    _stop_owner(owner)
    wait_until_sync(lambda: _dead(server_pid), 10, what="the server died with its owner")

    restarted = EmbeddedRedis(tmp_path)
    restarted.acquire()
    try:
        assert restarted.owner  # the stale state file was not trusted
        client = sync_redis.Redis.from_url(restarted.url)
        entries = client.xrange("chatroom:room:{lobby}:stream")
        assert [entry_id for entry_id, _ in entries] == ids
        client.close()
    finally:
        restarted.stop()


def test_a_broken_data_folder_is_reported(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "appendonlydir").write_text("not a folder")
    server = EmbeddedRedis(tmp_path)
    try:
        server.acquire(timeout=5)
    except RuntimeError as exc:
        assert "did not start" in str(exc)
    else:
        server.stop()
        raise AssertionError("a server started on a broken AOF folder")
