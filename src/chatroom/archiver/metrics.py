"""The archiver's Prometheus metrics, on prometheus_client's default registry.

The standalone archiver serves them on `metrics_port`; the app node's /metrics shows the
same registry, so an in-process archiver appears there. Names and help texts come from
`chatroom.metric_names`, where every metric is declared once.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from chatroom import metric_names as names


def _gauge(metric: names.MetricName) -> Gauge:
    return Gauge(metric.name, metric.help, list(metric.labels))


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
