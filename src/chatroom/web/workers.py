"""`chatroom serve --workers N`: N app-node processes on one port, under uvicorn's
supervisor.

The parent (this module's `run_workers`) has already started or found the embedded
Valkey server and applied or checked the SQL schema (web/process.py's preflight and
`open_backends`): the workers do neither. It binds the port once, and uvicorn's
`Multiprocess` starts N workers (spawned, not forked) that all accept on that socket,
pings them, and replaces one that dies or hangs. Each worker is a full node, as a
single `chatroom serve` is: its own hub and node id, its own connections and presence
heartbeat; clients of two workers meet through Redis as clients of two hosts do.

- The archiver: one per `serve`, in whichever worker holds the election lock
  (web/node_archiver.py), taken over by another within a second when that one dies.
- /metrics: prometheus_client's multiprocess mode, in a folder made here and removed on
  exit (web/worker_metrics.py); a dead worker's live gauges are removed here.
- Signals: SIGTERM or SIGINT to the parent sends SIGTERM to every worker, which drains as
  a single node does (sockets closed with 1001 "going away": clients reconnect and
  resume with `since`), then the parent exits. SIGHUP replaces the workers one by one;
  SIGTTIN and SIGTTOU add or remove one (uvicorn's). A worker dies with the parent, even
  when the parent is killed with SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from socket import socket
from typing import Any

from prometheus_client.multiprocess import mark_process_dead
from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors import Multiprocess

from chatroom.backends import Backends
from chatroom.embedded import die_with_parent
from chatroom.logs import configure_logging
from chatroom.settings import Settings
from chatroom.web.app import METRICS_FOLDER, create_app

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def worker_count(setting: int | str) -> int:
    """The `workers` setting as a number: `auto` is the cores this process may use."""
    if setting == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    return int(setting)


@dataclass(frozen=True)
class WorkerApp:
    """What a worker needs to build its app: pickled into it, then called there (uvicorn's
    app factory)."""

    settings: Settings
    redis_url: str
    database_url: str
    with_archiver: bool
    workers_dir: Path
    parent_pid: int

    def __call__(self) -> Any:
        die_with_parent(self.parent_pid)
        configure_logging(self.settings.log_level, worker=True)
        backends = Backends(self.redis_url, self.database_url, None, schema_ready=True)
        return create_app(
            self.settings,
            backends,
            with_archiver=self.with_archiver,
            workers_dir=self.workers_dir,
            settle=True,  # a worker is a process of its own (heap.py)
        )


def worker_app(settings: Settings, backends: Backends, *, with_archiver: bool) -> WorkerApp:
    """The workers' app factory, with a fresh folder of their own (removed by
    `run_workers`)."""
    workers_dir = Path(tempfile.mkdtemp(prefix="chatroom-serve-"))
    (workers_dir / METRICS_FOLDER).mkdir()
    # The loaded settings are of a class made inside `load_settings`: copy them into a
    # plain `Settings`, which pickles.
    plain = Settings.model_construct(
        _fields_set=settings.model_fields_set,
        **{name: getattr(settings, name) for name in Settings.model_fields},
    )
    return WorkerApp(
        plain, backends.redis_url, backends.database_url, with_archiver, workers_dir, os.getpid()
    )


class Supervisor(Multiprocess):
    """uvicorn's supervisor, which also removes a dead worker's live gauges."""

    def __init__(self, config: Config, sockets: list[socket], metrics_dir: Path) -> None:
        super().__init__(config, sockets)
        self._metrics_dir = str(metrics_dir)
        self._pids: set[int] = set()

    def keep_subprocess_alive(self) -> None:
        for process in self.processes:
            # The worker has its own copy of the pipe's end (passed when it started): the
            # parent's would keep a dead worker's end open, and a ping of a worker killed
            # meanwhile would then wait out the whole health-check timeout.
            if not process.child_conn.closed:
                process.child_conn.close()
        super().keep_subprocess_alive()
        alive = {p.pid for p in self.processes if p.pid is not None}
        for pid in self._pids - alive:
            mark_process_dead(pid, self._metrics_dir)  # type: ignore[no-untyped-call]
        self._pids = alive

    @property
    def startup_failed(self) -> bool:
        return any(p.exitcode == STARTUP_FAILURE for p in self.processes)


def run_workers(config: Config) -> None:
    """Serve with `config.workers` workers until SIGTERM or SIGINT; `config.app` is a
    `WorkerApp`."""
    app = config.app
    assert isinstance(app, WorkerApp)
    metrics_dir = app.workers_dir / METRICS_FOLDER
    # Before the first worker starts: each reads it when it first imports prometheus_client.
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    try:
        supervisor = Supervisor(config, [config.bind_socket()], metrics_dir)
        supervisor.run()
        if supervisor.startup_failed:
            raise SystemExit(1)
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(app.workers_dir, ignore_errors=True)
