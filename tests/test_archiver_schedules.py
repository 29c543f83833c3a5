"""Pure schedule decisions: interval, cron windows (also across midnight), the valve, and
the periodic chores' timers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chatroom.archiver.schedules import CHECK_EVERY_S, Every, Valve, decide
from chatroom.cron_window import CronWindow
from chatroom.settings import ArchiveSchedule, Settings


def _at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 27, hour, minute, tzinfo=UTC)


def test_window_parse_and_contains() -> None:
    night = CronWindow.parse("02:00-06:00")
    assert night.contains(_at(2)) and night.contains(_at(5, 59))
    assert not night.contains(_at(6)) and not night.contains(_at(1, 59))
    wrap = CronWindow.parse("22:30-01:15")
    assert wrap.contains(_at(23)) and wrap.contains(_at(0, 30)) and not wrap.contains(_at(12))
    assert CronWindow.parse("00:00-00:00").contains(_at(13))
    assert night.seconds_until_open(_at(1, 0)) == 3600
    assert night.seconds_until_open(_at(7, 0)) == 19 * 3600
    for bad in ("2-6", "25:00-06:00", "02:00"):
        with pytest.raises(ValueError, match="02:00-06:00"):
            CronWindow.parse(bad)


def test_the_settings_hold_the_parsed_window() -> None:
    assert Settings().archiver_cron_window == CronWindow(2 * 60, 6 * 60)
    window = Settings(archiver_cron_window="22:30-01:15").archiver_cron_window
    assert window == CronWindow(22 * 60 + 30, 75) and str(window) == "22:30-01:15"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_timer_is_due_at_once_then_once_per_period() -> None:
    clock = FakeClock()
    trims = Every(1.0, clock)
    assert trims.due()
    assert not trims.due()  # the same moment: done already
    clock.now += 0.99
    assert not trims.due()
    clock.now += 0.01
    assert trims.due() and not trims.due()
    clock.now += 5.0  # a late look is due once, not once per missed period
    assert trims.due() and not trims.due()


def test_a_restarted_timer_counts_a_whole_period_from_then() -> None:
    clock = FakeClock()
    rooms = Every(1.0, clock)
    rooms.restart()  # done just now (a forced refresh): not due before a period passed
    assert not rooms.due()
    clock.now += 0.5
    rooms.restart()
    clock.now += 0.9
    assert not rooms.due()
    clock.now += 0.1
    assert rooms.due()


def test_valve_opens_on_size_or_age() -> None:
    valve = Valve(max_backlog=100, max_age_s=60)
    assert not valve.open(99, 59.0) and not valve.open(0, None)
    assert valve.open(100, None) and valve.open(1, 60.0)


def _decide(schedule: ArchiveSchedule, **kw: object) -> tuple[bool, float]:
    args: dict[str, object] = {
        "now": _at(12),
        "seconds_since_last_run": None,
        "interval_s": 60.0,
        "window": CronWindow.parse("02:00-06:00"),
        "valve": Valve(1000, 3600),
        "backlog": 0,
        "oldest_age_s": None,
    }
    args.update(kw)
    decision = decide(schedule, **args)  # type: ignore[arg-type]
    return decision.drain_now, decision.wait_s


def test_interval_runs_every_interval() -> None:
    assert _decide(ArchiveSchedule.interval) == (True, 0.0)
    assert _decide(ArchiveSchedule.interval, seconds_since_last_run=20.0) == (False, 40.0)
    assert _decide(ArchiveSchedule.interval, seconds_since_last_run=60.0)[0]


def test_cron_waits_outside_the_window_unless_the_valve_opens() -> None:
    assert _decide(ArchiveSchedule.cron) == (False, CHECK_EVERY_S)
    assert _decide(ArchiveSchedule.cron, backlog=5000)[0]
    assert _decide(ArchiveSchedule.cron, oldest_age_s=7200.0)[0]
    assert _decide(ArchiveSchedule.cron, now=_at(3))[0]
    inside = _decide(ArchiveSchedule.cron, now=_at(3), seconds_since_last_run=1.0)
    assert inside == (False, CHECK_EVERY_S - 1.0)
    assert _decide(ArchiveSchedule.continuous)[0]
