"""The archiver's Prometheus metrics, on prometheus_client's default registry.

The standalone archiver serves them on `metrics_port`; the app node's /metrics shows the
same registry, so an in-process archiver appears there. Names and help texts come from
`chatroom.metric_names`, where every metric is declared once.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from chatroom import metric_names as names


class RoomLabels:
    """The `room` label of a slug: the slug of a public room, `private` for any other
    (a private room, or a stream that names no room the archiver knows of yet). Rooms
    never turn public or private, so the public set only grows: the pipeline reloads it
    from SQL with the room ids, when a room it does not know shows up."""

    def __init__(self) -> None:
        self.public: frozenset[str] = frozenset()

    def of(self, slug: str) -> str:
        return slug if slug in self.public else names.PRIVATE_ROOM_LABEL

    def set_gauges(self, values: Iterable[tuple[str, int, int, float]]) -> None:
        """(slug, backlog, pending, oldest age) per room into the per-room gauges; the
        private rooms as one: their sums, and their oldest age."""
        private = [0, 0, 0.0]
        for slug, backlog, pending, age in values:
            label = self.of(slug)
            if label == names.PRIVATE_ROOM_LABEL:
                private[0] += backlog
                private[1] += pending
                private[2] = max(private[2], age)
                continue
            BACKLOG.labels(label).set(backlog)
            PENDING.labels(label).set(pending)
            OLDEST_UNARCHIVED_AGE.labels(label).set(age)
        BACKLOG.labels(names.PRIVATE_ROOM_LABEL).set(private[0])
        PENDING.labels(names.PRIVATE_ROOM_LABEL).set(private[1])
        OLDEST_UNARCHIVED_AGE.labels(names.PRIVATE_ROOM_LABEL).set(private[2])


def _gauge(metric: names.MetricName) -> Gauge:
    # Under `serve --workers N` one worker at a time runs the archiver: its latest value
    # (web/worker_metrics.py; the mode is ignored in a single process).
    return Gauge(metric.name, metric.help, list(metric.labels), multiprocess_mode="livemostrecent")


def _counter(metric: names.MetricName) -> Counter:
    return Counter(metric.name, metric.help, list(metric.labels))


BACKLOG = _gauge(names.ARCHIVER_BACKLOG)
PENDING = _gauge(names.ARCHIVER_PENDING)
OLDEST_UNARCHIVED_AGE = _gauge(names.ARCHIVER_OLDEST_UNARCHIVED_AGE)
ARCHIVED = _counter(names.ARCHIVER_ARCHIVED_ROWS)
DEAD_LETTERS = _counter(names.ARCHIVER_DEAD_LETTERS)
MISSING = _counter(names.ARCHIVER_MISSING_ENTRIES)
SUSPECTS = _counter(names.ARCHIVER_SUSPECT_ENTRIES)
BATCH_SECONDS = Histogram(
    names.ARCHIVER_BATCH_SECONDS.name,
    names.ARCHIVER_BATCH_SECONDS.help,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BATCH_ROWS = Histogram(
    names.ARCHIVER_BATCH_ROWS.name,
    names.ARCHIVER_BATCH_ROWS.help,
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
OUTAGE = _gauge(names.ARCHIVER_OUTAGE)
