"""The app node's Prometheus metrics, on prometheus_client's default registry.

HTTP requests are counted by route template (never the raw path: one series per route,
whatever slugs or ids clients send). When the archiver runs in another process, its
backlog, lag and dead letters are still shown here, computed from `collect_status`
(Redis and SQL) at most every few seconds, under the names the archiver itself uses.
As there, the `room` label is a public room's slug, and every private room is counted
together as `private`: /metrics never names a private room.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatroom import metric_names
from chatroom.metric_names import PRIVATE_ROOM_LABEL, MetricName
from chatroom.status import Status, collect_status
from chatroom.store.counts import public_rooms

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter(
    metric_names.HTTP_REQUESTS.name,
    metric_names.HTTP_REQUESTS.help,
    metric_names.HTTP_REQUESTS.labels,
)
HTTP_SECONDS = Histogram(
    metric_names.HTTP_REQUEST_SECONDS.name,
    metric_names.HTTP_REQUEST_SECONDS.help,
    metric_names.HTTP_REQUEST_SECONDS.labels,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

# Counted, not logged: anyone can send refused upgrades, as many as they like.
WS_UPGRADES_REFUSED = Counter(
    metric_names.WS_UPGRADES_REFUSED.name,
    metric_names.WS_UPGRADES_REFUSED.help,
    metric_names.WS_UPGRADES_REFUSED.labels,
)


class HttpMetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI: WebSockets pass straight through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or _unrouted(scope)
            method = str(scope.get("method", "GET"))
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_SECONDS.labels(method, route).observe(time.perf_counter() - started)


def _unrouted(scope: Scope) -> str:
    path = str(scope.get("path", ""))
    return "/assets" if path.startswith("/assets/") else "other"


class ArchiverStatusMetrics(Collector):
    """The archiver's backlog, pending, oldest age, archived rows and dead letters per
    room, read from Redis and SQL, for a node whose archiver runs elsewhere."""

    def __init__(self, redis: Redis, engine: AsyncEngine, *, max_age_s: float = 5.0) -> None:
        self._redis = redis
        self._engine = engine
        self._max_age_s = max_age_s
        self._status: Status | None = None
        self._public: frozenset[str] = frozenset()
        self._taken = 0.0

    async def refresh(self) -> None:
        """Re-read the status if the last reading is older than `max_age_s`."""
        if self._status is not None and time.monotonic() - self._taken < self._max_age_s:
            return
        try:
            self._status = await collect_status(self._redis, self._engine)
            self._public = await public_rooms(self._engine)
        except Exception as exc:  # a scrape must not fail because a backend is down
            log.warning("cannot read the archiver status for /metrics: %s", exc)
            return
        self._taken = time.monotonic()

    def describe(self) -> Iterable[Metric]:
        # Names known before the first reading: registering clashes with an in-process
        # archiver's metrics at once, not at the first scrape.
        return self._families()

    def collect(self) -> Iterable[Metric]:
        status = self._status
        if status is None:
            return []
        backlog, pending, age, archived, dead = families = self._families()
        # By public slug; every private room (or unknown stream) as one `private` room.
        rooms: dict[str, list[float]] = {}
        for slug, room in status.rooms.items():
            label = slug if slug in self._public else PRIVATE_ROOM_LABEL
            sums = rooms.setdefault(label, [0, 0, 0.0, 0, 0])
            sums[0] += room.backlog
            sums[1] += room.pending
            sums[2] = max(sums[2], room.oldest_unarchived_age_s or 0.0)
            sums[3] += room.archived
            sums[4] += room.dead_letters
        for label, (room_backlog, room_pending, room_age, room_archived, room_dead) in sorted(
            rooms.items()
        ):
            backlog.add_metric([label], room_backlog)
            pending.add_metric([label], room_pending)
            age.add_metric([label], room_age)
            archived.add_metric([label], room_archived)
            dead.add_metric([label], room_dead)
        return families

    @staticmethod
    def _families() -> list[GaugeMetricFamily | CounterMetricFamily]:
        return [
            _gauge(metric_names.ARCHIVER_BACKLOG),
            _gauge(metric_names.ARCHIVER_PENDING),
            _gauge(metric_names.ARCHIVER_OLDEST_UNARCHIVED_AGE),
            _counter(metric_names.ARCHIVER_ARCHIVED_ROWS),
            _counter(metric_names.ARCHIVER_DEAD_LETTERS),
        ]


class HubStatsLike(Protocol):
    connections: int
    messages_in: int
    messages_out: int
    slow_consumers: int
    missed_delivered: int
    resyncs: int
    fanout_lag_ms: float


class HubMetrics(Collector):
    """The realtime hub's counters (chatroom.hub.hub.HubStats), read at each scrape."""

    def __init__(self, stats: Callable[[], HubStatsLike | None]) -> None:
        self._stats = stats

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        stats = self._stats()
        if stats is None:
            return []
        connections, received, sent, slow, missed, resyncs, lag = families = self._families()
        connections.add_metric([], stats.connections)
        received.add_metric([], stats.messages_in)
        sent.add_metric([], stats.messages_out)
        slow.add_metric([], stats.slow_consumers)
        missed.add_metric([], stats.missed_delivered)
        resyncs.add_metric([], stats.resyncs)
        lag.add_metric([], stats.fanout_lag_ms / 1000)
        return families

    @staticmethod
    def _families() -> list[GaugeMetricFamily | CounterMetricFamily]:
        return [
            _gauge(metric_names.WS_CONNECTIONS),
            _counter(metric_names.WS_MESSAGES_IN),
            _counter(metric_names.WS_MESSAGES_OUT),
            _counter(metric_names.WS_SLOW_CONSUMERS),
            _counter(metric_names.WS_MISSED_DELIVERED),
            _counter(metric_names.WS_RESYNCS),
            _gauge(metric_names.FANOUT_LATENCY),
        ]


def _gauge(metric: MetricName) -> GaugeMetricFamily:
    return GaugeMetricFamily(metric.name, metric.help, labels=metric.labels)


def _counter(metric: MetricName) -> CounterMetricFamily:
    return CounterMetricFamily(metric.name, metric.help, labels=metric.labels)


def register(collector: Collector) -> bool:
    """Show `collector` on /metrics; False if its names are already shown."""
    try:
        REGISTRY.register(collector)
    except ValueError:  # an in-process archiver's own metrics, or another app's
        return False
    return True


def unregister(collector: Collector) -> None:
    try:
        REGISTRY.unregister(collector)
    except KeyError:
        return
