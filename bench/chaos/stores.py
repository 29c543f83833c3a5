"""The campaign's own stores: a Redis with AOF, a MariaDB, or the embedded Valkey.

The machine's Redis and MariaDB are shared with other people's tests: the campaign never
signals them. It starts its own, on free loopback ports in its temp folder, so that it
may kill, pause and starve them at will.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

from bench.chaos import fsync_records
from bench.chaos.processes import Process, ProcessFailed
from bench.mariadb_server import install_datadir, mariadbd_argv

from chatroom.loopback_ports import free_port

REDIS_SERVER = "/usr/bin/redis-server"
DATABASE = "chatroom_chaos"


def own_redis(folder: Path, log_dir: Path, *, appendfsync: str, preload: dict[str, str]) -> Process:
    """redis-server with AOF on (`appendfsync` as given), no RDB, noeviction; `preload`:
    the fsync recorder's environment (fsync_records.preload_env), or nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        shutil.which("redis-server") or REDIS_SERVER,
        *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)),
        *("--appendonly", "yes", "--appendfsync", appendfsync, "--save", ""),
        *("--maxmemory-policy", "noeviction", "--daemonize", "no"),
        *("--protected-mode", "no", "--logfile", str(log_dir / "redis-server.log")),
    ]
    env = {**os.environ, **preload}
    return Process("redis", argv, env=env, cwd=folder, log_dir=log_dir, port=port)


def aof_tail_file(folder: Path) -> Path | None:
    """The AOF file that receives new writes (Redis 7's multi-part AOF: the incr file)."""
    manifest = next(folder.glob("appendonlydir/*.manifest"), None)
    if manifest is None:
        return None
    incr = [
        line.split()[1]
        for line in manifest.read_text().splitlines()
        if line.startswith("file ") and line.rstrip().endswith("type i")
    ]
    return (manifest.parent / incr[-1]) if incr else None


class AofTail:
    """The size of Redis's AOF tail over time, to cut it back as a power cut would."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sizes: list[tuple[float, str, int]] = []  # (when, file, size)

    async def watch(self, every_s: float = 0.2) -> None:
        while True:
            tail = aof_tail_file(self.folder)
            if tail is not None:
                with contextlib.suppress(OSError):
                    self.sizes.append((time.time(), str(tail), tail.stat().st_size))
                    del self.sizes[:-100]
            await asyncio.sleep(every_s)

    def cut_back(self, before: float) -> int:
        """Truncate the tail to its size at `before` (Redis stopped first); bytes cut."""
        tail = aof_tail_file(self.folder)
        if tail is None:
            return 0
        sizes = [s for t, path, s in self.sizes if t <= before and path == str(tail)]
        if not sizes:
            return 0  # rewritten since: nothing known to cut back to
        now, keep = tail.stat().st_size, sizes[-1]
        if keep >= now:
            return 0
        with tail.open("r+b") as handle:
            handle.truncate(keep)
        return now - keep

    def cut_to_synced(self, records: Path, pid: int) -> int | None:
        """Truncate the tail to where the last fsync of Redis (`pid`, stopped first)
        ended; bytes cut, or None when that process recorded no fsync of it."""
        tail = aof_tail_file(self.folder)
        if tail is None:
            return 0
        synced = fsync_records.synced_size(records, tail, pid)
        if synced is None:
            return None
        fsync_records.forget(records)  # the restarted Redis makes its own
        now = tail.stat().st_size
        if synced >= now:
            return 0
        with tail.open("r+b") as handle:
            handle.truncate(synced)
        return now - synced


def hold_sqlite_lock(path: Path, seconds: float) -> None:
    """Hold SQLite's write lock (BEGIN EXCLUSIVE) for `seconds`: SQL is busy for writers."""
    db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    try:
        db.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        db.execute("ROLLBACK")
    finally:
        db.close()


def own_mariadb(folder: Path, log_dir: Path) -> Process:
    """A fresh mariadbd datadir (system tables only), root without a password."""
    data = folder / "data"
    if not data.exists():
        failed = install_datadir(data)
        if failed is not None:
            raise ProcessFailed(failed)
    port = free_port()
    argv = mariadbd_argv(
        data, folder, port, log_dir / "mariadbd.log", "--innodb-buffer-pool-size=64M"
    )
    return Process("mariadb", argv, env=dict(os.environ), cwd=folder, log_dir=log_dir, port=port)


def valkey_holder(
    data_dir: Path, log_dir: Path, repo: Path, *, appendfsync: str, preload: dict[str, str]
) -> Process:
    """The embedded run's Valkey, owned by bench.chaos.valkey_holder (see there why)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATROOM_")} | preload
    env["CHATROOM_EMBEDDED_APPENDFSYNC"] = appendfsync
    argv = [sys.executable, "-m", "bench.chaos.valkey_holder", str(data_dir), "1.0"]
    return Process("valkey", argv, env=env, cwd=repo, log_dir=log_dir)


def embedded_state(data_dir: Path) -> dict[str, object]:
    try:
        found: dict[str, object] = json.loads(
            (data_dir / "redis" / "embedded-redis.json").read_text()
        )
    except (OSError, ValueError):
        return {}
    return found


def wait_embedded_url(data_dir: Path, holder: Process, timeout: float) -> str:
    """The embedded server's URL once the holder has it running."""
    deadline = time.monotonic() + timeout
    while True:
        url = embedded_state(data_dir).get("url")
        if isinstance(url, str):
            return url
        if not holder.alive():
            raise ProcessFailed(f"the Valkey holder exited:\n{holder.log_tail()}")
        if time.monotonic() > deadline:
            raise ProcessFailed("the embedded Valkey did not start")
        time.sleep(0.1)
