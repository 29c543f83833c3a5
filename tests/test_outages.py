"""Pure outage handling: capped jittered backoff; one log line per state change."""

from __future__ import annotations

import random

from chatroom.outages import Backoff, Outage, first_line


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
    now = [0.0]
    state = Outage("SQL", "the backlog stays in Redis", clock=lambda: now[0])
    assert state.recovered() is None
    now[0] = 10.0
    first = state.failed("connection refused")
    assert first == "SQL is unreachable (connection refused); the backlog stays in Redis"
    assert [state.failed("connection refused") for _ in range(50)] == [None] * 50
    now[0] = 40.0
    assert state.recovered() == "SQL is back after 30.0 s and 51 failed attempts"
    assert state.recovered() is None and not state.down


def test_first_line_is_the_drivers_message_cut_short() -> None:
    class Wrapped(Exception):
        orig = ValueError("Duplicate entry 'x' for key 'y'\nmore detail")

    assert first_line(Wrapped("wrapper text")) == "Duplicate entry 'x' for key 'y'"
    assert first_line(RuntimeError()) == "RuntimeError"
    assert len(first_line(RuntimeError("x" * 1000))) == 300
