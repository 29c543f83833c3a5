"""A 3-master Redis Cluster on loopback for the benches (`--redis cluster`): the one the
tests start (tests/redis_cluster.py: Debian's redis-server, AOF with appendfsync always,
`redis-cli --cluster create`), with the CPU of its three processes reported as one."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from _servers import REPO_DIR, SharedProcess

sys.path.insert(0, str(REPO_DIR / "tests"))

from redis_cluster import RedisCluster, running_cluster, tools_missing


class ClusterProcesses(SharedProcess):
    """The CPU times of every master of the cluster, summed."""

    def __init__(self, cluster: RedisCluster) -> None:
        self.processes = [psutil.Process(p.pid) for p in cluster.processes.values()]

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.processes:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += float(times.user + times.system)
        return total


@contextmanager
def local_cluster() -> Iterator[RedisCluster]:
    missing = tools_missing()
    if missing is not None:
        raise SystemExit(f"--redis cluster: {missing}")
    with running_cluster(Path(tempfile.mkdtemp(prefix="chatroom-bench-cluster-"))) as cluster:
        print(f"Redis Cluster of 3 masters at {cluster.url}", flush=True)
        yield cluster
