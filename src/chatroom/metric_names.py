"""Every Prometheus metric Chatroom shows: its name, help text and labels, in one place.

An app node whose archiver runs in another process shows the archiver's figures under the
archiver's own names, computed from `chatroom status` (web/metrics.py): a dashboard reads
the same series wherever the archiver runs, so both sides declare them from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MetricName:
    name: str
    help: str
    labels: tuple[str, ...] = ()


# The app node: HTTP and the realtime hub.
HTTP_REQUESTS = MetricName(
    "chatroom_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ("method", "route", "status"),
)
HTTP_REQUEST_SECONDS = MetricName(
    "chatroom_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ("method", "route"),
)
WS_CONNECTIONS = MetricName("chatroom_ws_connections", "Open WebSocket connections.")
WS_MESSAGES_IN = MetricName("chatroom_ws_messages_in", "Messages sent by clients and acknowledged.")
WS_MESSAGES_OUT = MetricName(
    "chatroom_ws_messages_out", "Message frames queued to sockets, replays included."
)
WS_SLOW_CONSUMERS = MetricName(
    "chatroom_ws_slow_consumers", "Connections closed for falling behind."
)
WS_UPGRADES_REFUSED = MetricName(
    "chatroom_ws_upgrades_refused",
    "WebSocket upgrades refused before opening, by error code (origin, session, ...).",
    ("code",),
)
WS_MISSED_DELIVERED = MetricName(
    "chatroom_ws_missed_delivered",
    "Messages the archiver trimmed before this node read them, delivered from SQL.",
)
WS_RESYNCS = MetricName(
    "chatroom_ws_resyncs",
    "resync frames sent: a gap the node could not fill, or messages Redis lost.",
)
FANOUT_LATENCY = MetricName(
    "chatroom_fanout_latency_seconds",
    "Latest fan-out batch: from the newest message's id time to its fan-out.",
)

# The `room` label of the per-room series: a public room's slug; every private room is
# counted together under this one label (a private room's name is not for /metrics, which
# answers without a login), and so is a stream that names no room.
PRIVATE_ROOM_LABEL = "private"

# The archiver, per room unless said otherwise.
ARCHIVER_BACKLOG = MetricName(
    "chatroom_archiver_backlog",
    "Stream entries not yet archived (undelivered or pending), per room.",
    ("room",),
)
ARCHIVER_PENDING = MetricName(
    "chatroom_archiver_pending",
    "Entries delivered to an archiver and not yet acknowledged, per room.",
    ("room",),
)
ARCHIVER_OLDEST_UNARCHIVED_AGE = MetricName(
    "chatroom_archiver_oldest_unarchived_age_seconds",
    "Age of the oldest entry not yet archived, per room (0 when none).",
    ("room",),
)
ARCHIVER_ARCHIVED_ROWS = MetricName(
    "chatroom_archiver_archived_rows",
    "Messages written to SQL and acknowledged, per room.",
    ("room",),
)
ARCHIVER_DEAD_LETTERS = MetricName(
    "chatroom_archiver_dead_letters", "Entries sent to the dead letters, per room.", ("room",)
)
ARCHIVER_MISSING_ENTRIES = MetricName(
    "chatroom_archiver_missing_entries",
    "Pending entries whose data was deleted before they were archived, per room.",
    ("room",),
)
ARCHIVER_SUSPECT_ENTRIES = MetricName(
    "chatroom_archiver_suspect_entries",
    "Entries delivered more than archiver_max_deliveries times, then archived apart "
    "(alone, one per transaction), per room.",
    ("room",),
)
ARCHIVER_BATCH_SECONDS = MetricName(
    "chatroom_archiver_batch_duration_seconds",
    "Time to write one batch to SQL, commit and acknowledge it.",
)
ARCHIVER_BATCH_ROWS = MetricName("chatroom_archiver_batch_rows", "Entries per batch.")
ARCHIVER_OUTAGE = MetricName(
    "chatroom_archiver_outage",
    "1 while the archiver cannot reach a dependency (redis or sql), else 0.",
    ("dependency",),
)
