"""/metrics of a `chatroom serve --workers N`: every worker's figures, summed.

prometheus_client's multiprocess mode: each worker writes its counters, gauges and
histograms to files in PROMETHEUS_MULTIPROC_DIR (set by the supervisor before it starts
the workers, web/workers.py), and whichever worker answers a scrape reads them all
(`MultiProcessCollector`). Counters and histograms add up, those of dead workers
included (a counter never goes back); the archiver's gauges are set by one worker at a
time and show the live one's latest value; a dead worker's live gauges are removed by
the supervisor (`mark_process_dead`).

Custom collectors read at scrape time see only the answering worker, so the hub's
figures (`HubMetrics` in a single process) are copied into multiprocess metrics by each
worker (`HubMirror`): every `MIRROR_EVERY_S`, and by the answering worker just before
it answers. Another worker's hub figures are thus at most that old. The archiver's
per-room status for a node whose archiver runs elsewhere (`ArchiverStatusMetrics`) is
computed from Redis and SQL, the same whichever worker answers: it is added as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from chatroom import metric_names as names
from chatroom.web.metrics import HubStatsLike

MIRROR_EVERY_S = 1.0
# HubStats counters and the metric each is mirrored into.
_COUNTED = {
    "messages_in": names.WS_MESSAGES_IN,
    "messages_out": names.WS_MESSAGES_OUT,
    "slow_consumers": names.WS_SLOW_CONSUMERS,
    "missed_delivered": names.WS_MISSED_DELIVERED,
    "resyncs": names.WS_RESYNCS,
}


class HubMirror:
    """One worker's hub figures as multiprocess metrics (registered nowhere: the files
    are what a scrape reads)."""

    def __init__(self, stats: Callable[[], HubStatsLike | None]) -> None:
        self._stats = stats
        self._counters = {
            field: Counter(metric.name, metric.help, registry=None)
            for field, metric in _COUNTED.items()
        }
        self._copied = dict.fromkeys(_COUNTED, 0)
        self._connections = Gauge(
            names.WS_CONNECTIONS.name,
            names.WS_CONNECTIONS.help,
            registry=None,
            multiprocess_mode="livesum",
        )
        self._lag = Gauge(
            names.FANOUT_LATENCY.name,
            names.FANOUT_LATENCY.help,
            registry=None,
            multiprocess_mode="livemax",
        )

    def copy(self) -> None:
        stats = self._stats()
        if stats is None:
            return
        for field, counter in self._counters.items():
            value = int(getattr(stats, field))
            if value > self._copied[field]:
                counter.inc(value - self._copied[field])
                self._copied[field] = value
        self._connections.set(stats.connections)
        self._lag.set(stats.fanout_lag_ms / 1000)


@asynccontextmanager
async def mirrored(mirror: HubMirror) -> AsyncIterator[None]:
    """Copy the hub's figures every MIRROR_EVERY_S while the context runs, and at its end."""

    async def keep_copying() -> None:
        while True:
            mirror.copy()
            await asyncio.sleep(MIRROR_EVERY_S)

    task = asyncio.create_task(keep_copying(), name="hub-metrics-mirror")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        mirror.copy()


class WorkerMetrics:
    """What the answering worker's /metrics shows."""

    def __init__(self, folder: Path, mirror: HubMirror) -> None:
        self.folder = folder
        self.mirror = mirror

    def registry(self, also: Collector | None = None) -> CollectorRegistry:
        self.mirror.copy()
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.folder))  # type: ignore[no-untyped-call]
        if also is not None:
            registry.register(also)
        return registry
