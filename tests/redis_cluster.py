"""A real 3-master Redis Cluster on loopback, from Debian's redis-server.

`running_cluster(folder)` starts three `redis-server --cluster-enabled yes` processes on
free ports (each also needs its port + 10000 for the cluster bus), with AOF and
`appendfsync always` (the fsync ack mode without WAITAOF), joins them with
`redis-cli --cluster create ... --cluster-yes`, waits until CLUSTER INFO says ok, and
stops them (SIGTERM, then SIGKILL) at the end. A master can be killed and restarted on
the same port and folder: it comes back from its AOF.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from chatroom.loopback_ports import free_port

MASTERS = 3
START_TIMEOUT_S = 30.0


def tools_missing() -> str | None:
    """Why the cluster cannot start here (None: it can)."""
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install redis-server)"
    return None


def _free_ports(count: int) -> list[int]:
    found: list[int] = []
    while len(found) < count:
        port = free_port(with_bus=True)
        if port not in found:
            found.append(port)
    return found


@dataclass
class RedisCluster:
    folder: Path
    ports: list[int]
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def cli(self, port: int, *args: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
            capture_output=True,
            timeout=30,
            check=True,
        )
        return done.stdout.decode()

    def start(self, port: int) -> None:
        folder = self.folder / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        command = [
            "redis-server",
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--dir", str(folder),
        ]  # fmt: skip
        with (folder / "redis.log").open("ab") as log:
            self.processes[port] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._wait(lambda: self.cli(port, "PING").strip() == "PONG", f"{port} answers")

    def kill(self, port: int) -> None:
        """kill -9 of one master."""
        process = self.processes.pop(port)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    def healthy(self) -> bool:
        try:
            return all("cluster_state:ok" in self.cli(p, "CLUSTER", "INFO") for p in self.ports)
        except subprocess.SubprocessError:
            return False

    def wait_healthy(self) -> None:
        self._wait(self.healthy, "the cluster is ok")

    def flush(self) -> None:
        for port in self.ports:
            self.cli(port, "FLUSHALL")
            self.cli(port, "SCRIPT", "FLUSH")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    @staticmethod
    def _wait(check: object, what: str) -> None:
        assert callable(check)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if check():
                    return
            except (subprocess.SubprocessError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting until {what}")
            time.sleep(0.1)


@contextmanager
def running_cluster(folder: Path) -> Iterator[RedisCluster]:
    cluster = RedisCluster(folder, _free_ports(MASTERS))
    try:
        for port in cluster.ports:
            cluster.start(port)
        nodes = [f"127.0.0.1:{p}" for p in cluster.ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-yes"],
            capture_output=True,
            timeout=60,
            check=True,
        )
        cluster.wait_healthy()
        yield cluster
    finally:
        cluster.stop()
