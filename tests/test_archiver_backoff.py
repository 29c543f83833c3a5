"""Pure outage handling: capped jittered backoff; one log line per state change."""

from __future__ import annotations

import random

import pytest

from chatroom.archiver.backoff import Backoff, OutageState
from chatroom.archiver.failpoints import Failpoints, UnknownFailpoint


def test_backoff_grows_to_its_cap_and_resets() -> None:
    backoff = Backoff(base_s=0.1, cap_s=2.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(12)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(1.0 <= d <= 2.0 for d in delays[6:])
    backoff.reset()
    assert backoff.next_delay() <= 0.1
    for _ in range(2000):  # no overflow however long the outage
        backoff.next_delay()
    assert backoff.next_delay() <= 2.0


def test_outage_is_logged_once_when_it_starts_and_once_when_it_ends() -> None:
    state = OutageState("SQL")
    assert state.recovered(0.0) is None
    first = state.failed("connection refused", now=10.0)
    assert first is not None and "SQL is unreachable (connection refused)" in first
    assert [state.failed("connection refused", now=10.0 + i) for i in range(50)] == [None] * 50
    back = state.recovered(now=40.0)
    assert back == "SQL is back after 30.0 s and 51 failed attempts"
    assert state.recovered(41.0) is None and not state.down


def test_failpoints_fire_on_the_nth_time_only() -> None:
    points = Failpoints.from_env(
        {"CHATROOM_FAILPOINT": "after_read", "CHATROOM_FAILPOINT_AFTER": "3"}
    )
    assert [points.should_fire("after_read") for _ in range(4)] == [False, False, True, False]
    assert not points.should_fire("after_commit_before_ack")
    assert Failpoints.from_env({}).point is None
    with pytest.raises(UnknownFailpoint, match="after_lunch"):
        Failpoints.from_env({"CHATROOM_FAILPOINT": "after_lunch"})
    with pytest.raises(UnknownFailpoint, match="whole number"):
        Failpoints.from_env({"CHATROOM_FAILPOINT": "after_read", "CHATROOM_FAILPOINT_AFTER": "x"})
