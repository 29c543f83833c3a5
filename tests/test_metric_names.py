"""Each metric is declared once, in chatroom.metric_names, whichever process shows it."""

from __future__ import annotations

from prometheus_client.metrics import MetricWrapperBase

from chatroom import metric_names
from chatroom.archiver import metrics as archiver_metrics
from chatroom.metric_names import MetricName
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
