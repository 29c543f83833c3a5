"""Start, watch and stop the servers under test; every process started here is stopped here.

Each server runs in its own session (process group), so stopping it reaches any helper
process it forked, and nothing the bench started outlives it: `ServerSet` stops
everything on normal exit, on an exception, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent


class ServerFailed(Exception):
    """A server under test did not start or died."""


class Server:
    """One server process under test."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path = REPO_DIR,
        log_dir: Path,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.port = port
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.process: psutil.Process | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.process = psutil.Process(self.popen.pid)

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            code = None if self.popen is None else self.popen.returncode
            raise ServerFailed(f"{self.name} exited (code {code}):\n{self.log_tail()}")

    async def wait_listening(self, timeout: float = 60.0) -> None:
        assert self.port is not None
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if time.monotonic() > deadline:
                    raise ServerFailed(
                        f"{self.name} did not listen on port {self.port} within {timeout:.0f} s"
                        f":\n{self.log_tail()}"
                    ) from None
                await asyncio.sleep(0.1)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    def cpu_seconds(self) -> float:
        """CPU time of the server and any children it forked."""
        assert self.process is not None
        total = 0.0
        for proc in [self.process, *self.process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def rss_bytes(self) -> int:
        """Resident memory of the server and any children it started (the workers of
        `chatroom serve --workers N`)."""
        assert self.process is not None
        total = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def stop(self, grace: float = 5.0, sig: int = signal.SIGTERM) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(grace)


class ServerSet:
    """Every server this bench started, stopped together whatever happens."""

    def __init__(self) -> None:
        self.servers: list[Server] = []

    def add(self, server: Server) -> Server:
        self.servers.append(server)
        server.start()
        return server

    def stop_all(self) -> None:
        while self.servers:
            self.servers.pop().stop()

    @contextlib.contextmanager
    def running(self) -> Iterator[ServerSet]:
        def on_term(signum: int, frame: FrameType | None) -> None:
            raise SystemExit(128 + signum)

        previous = signal.signal(signal.SIGTERM, on_term)
        try:
            yield self
        finally:
            self.stop_all()
            signal.signal(signal.SIGTERM, previous)


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


class SharedProcess:
    """A process the bench did not start but whose CPU it reports: the machine's Redis."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process

    def cpu_seconds(self) -> float:
        try:
            times = self.process.cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)


def machine_redis(port: int = 6379) -> SharedProcess | None:
    """The redis-server serving `port`, if this user may read its CPU times."""
    for proc in psutil.process_iter(["name", "cmdline"]):
        name = proc.info.get("name") or ""
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if name.startswith(("redis-server", "valkey-server")) and f":{port}" in cmdline:
            return SharedProcess(proc)
    return None


def embedded_redis(data_dir: Path) -> SharedProcess | None:
    """The embedded valkey-server of a Chatroom data folder (whichever process started it)."""
    for proc in psutil.process_iter(["name", "cmdline"]):
        name = proc.info.get("name") or ""
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if name.startswith("valkey-server") and str(data_dir) in cmdline:
            return SharedProcess(proc)
    return None


class CpuMeter:
    """CPU use of a set of processes over a window, in percent of one core."""

    def __init__(self, processes: Sequence[Server | SharedProcess]) -> None:
        self.processes = processes
        self.started = time.monotonic()
        self.cpu = [p.cpu_seconds() for p in processes]

    def percent(self) -> list[float]:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return [
            round(100.0 * (p.cpu_seconds() - before) / elapsed, 1)
            for p, before in zip(self.processes, self.cpu, strict=True)
        ]


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system
