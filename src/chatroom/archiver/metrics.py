"""The archiver's Prometheus metrics, on prometheus_client's default registry.

The standalone archiver serves them on `metrics_port`; the app node's /metrics shows the
same registry, so an in-process archiver appears there.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BACKLOG = Gauge(
    "chatroom_archiver_backlog",
    "Stream entries not yet archived (undelivered or pending), per room.",
    ["room"],
)
PENDING = Gauge(
    "chatroom_archiver_pending",
    "Entries delivered to an archiver and not yet acknowledged, per room.",
    ["room"],
)
OLDEST_UNARCHIVED_AGE = Gauge(
    "chatroom_archiver_oldest_unarchived_age_seconds",
    "Age of the oldest entry not yet archived, per room (0 when none).",
    ["room"],
)
ARCHIVED = Counter(
    "chatroom_archiver_archived_rows",
    "Messages written to SQL and acknowledged, per room.",
    ["room"],
)
DEAD_LETTERS = Counter(
    "chatroom_archiver_dead_letters",
    "Entries sent to the dead letters, per room.",
    ["room"],
)
MISSING = Counter(
    "chatroom_archiver_missing_entries",
    "Pending entries whose data was deleted before they were archived, per room.",
    ["room"],
)
BATCH_SECONDS = Histogram(
    "chatroom_archiver_batch_duration_seconds",
    "Time to write one batch to SQL, commit and acknowledge it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BATCH_ROWS = Histogram(
    "chatroom_archiver_batch_rows",
    "Entries per batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
OUTAGE = Gauge(
    "chatroom_archiver_outage",
    "1 while the archiver cannot reach a dependency (redis or sql), else 0.",
    ["dependency"],
)
