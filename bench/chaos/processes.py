"""One process of the system under test: start, kill -9, pause, resume, restart.

Each process runs in its own session (process group), so a signal reaches anything it
forked, and nothing the campaign started outlives it: `Processes.stop_all` runs on every
exit path. The campaign only ever signals processes it started itself, by their pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


class ProcessFailed(Exception):
    """A process of the system under test did not start in time."""


class Process:
    """A named process with its argv and environment; may be started again after a kill."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        cwd: Path,
        log_dir: Path,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.original_argv = list(argv)
        self.extra_env: dict[str, str] = {}
        self.env = env
        self.cwd = cwd
        self.port = port
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.down_on_purpose = False  # killed or stopped by the campaign, not yet restarted
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        if self.alive():
            return
        self.starts += 1
        self.down_on_purpose = False
        self.extra_env = dict(extra_env or {})
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start {self.starts} at {time.time():.3f} ---\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                env={**self.env, **self.extra_env},
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.paused = False

    def wait_listening(self, timeout: float) -> None:
        """Until the port answers; ProcessFailed if the process died or time ran out."""
        assert self.port is not None
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if not self.alive():
                raise ProcessFailed(f"{self.name} exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{self.name} not listening after {timeout:g} s")
            time.sleep(0.1)

    def _signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def kill9(self) -> None:
        """SIGKILL to the process group, then reap it."""
        self.down_on_purpose = True
        self._signal(signal.SIGKILL)
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(10)
        self.paused = False

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self.paused = False

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM (after SIGCONT, a stopped process cannot handle it), then SIGKILL."""
        self.down_on_purpose = True
        if self.popen is None or self.popen.poll() is not None:
            return
        self.resume()
        self._signal(signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill9()

    @property
    def altered(self) -> bool:
        """Started with a failpoint or another argv (a fault's), not as configured."""
        return bool(self.extra_env) or self.argv != self.original_argv

    def exited_with(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Processes:
    """Every process the campaign started, stopped together whatever happens."""

    def __init__(self) -> None:
        self.all: list[Process] = []

    def add(self, process: Process) -> Process:
        self.all.append(process)
        return process

    def stop_all(self) -> None:
        # The reverse of the start order: clients' servers first, the stores last.
        for process in reversed(self.all):
            with contextlib.suppress(Exception):
                process.stop()
