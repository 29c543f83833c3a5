"""Each metric is declared once, in chatroom.metric_names, whichever process shows it."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from chatroom import metric_names
from chatroom.archiver import metrics as archiver_metrics
from chatroom.metric_names import PRIVATE_ROOM_LABEL, MetricName
from chatroom.web.metrics import ArchiverStatusMetrics, HubMetrics

CATALOGUE = [m for m in vars(metric_names).values() if isinstance(m, MetricName)]
DECLARED = {m.name: m.help for m in CATALOGUE}


def _archiver_shows() -> dict[str, str]:
    return {
        family.name: family.documentation
        for value in vars(archiver_metrics).values()
        if isinstance(value, MetricWrapperBase)
        for family in value.describe()
    }


def test_each_name_is_declared_once() -> None:
    assert len(DECLARED) == len(CATALOGUE)


def test_the_archiver_shows_the_declared_names_and_help() -> None:
    shown = _archiver_shows()
    assert shown and shown.items() <= DECLARED.items()


def test_an_app_node_shows_the_archivers_figures_under_the_same_names_and_help() -> None:
    # A node whose archiver runs elsewhere computes the archiver's per-room figures itself:
    # a dashboard reads the same series, with the same help, wherever the archiver runs.
    node = {f.name: f.documentation for f in ArchiverStatusMetrics._families()}
    assert node and node.items() <= _archiver_shows().items()
    hub = {f.name: f.documentation for f in HubMetrics._families()}
    assert hub and hub.items() <= DECLARED.items()


def test_the_archiver_s_gauges_name_public_rooms_and_sum_the_private_ones() -> None:
    labels = archiver_metrics.RoomLabels()
    labels.public = frozenset({"town-square"})
    labels.set_gauges(
        [
            ("town-square", 4, 1, 2.0),
            ("hush-hush", 3, 0, 9.0),
            ("under-wraps", 2, 2, 1.0),
            ("no-such-room", 1, 0, 0.5),
        ]
    )

    def sample(name: str, room: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"room": room})

    assert sample("chatroom_archiver_backlog", "town-square") == 4
    assert sample("chatroom_archiver_backlog", PRIVATE_ROOM_LABEL) == 6
    assert sample("chatroom_archiver_pending", PRIVATE_ROOM_LABEL) == 2
    assert sample("chatroom_archiver_oldest_unarchived_age_seconds", PRIVATE_ROOM_LABEL) == 9.0
    shown = generate_latest(REGISTRY)
    assert b"hush-hush" not in shown and b"under-wraps" not in shown
