"""When the archiver works, as pure decisions on a clock the caller passes in: whether a
scheduled run drains now (continuously, every X seconds, or in an off-peak window with a
safety valve), and when a periodic chore is due again (`Every`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from chatroom.cron_window import CronWindow
from chatroom.settings import ArchiveSchedule

# How often a waiting schedule looks again (the valve, the window, a stop request).
CHECK_EVERY_S = 5.0


class Every:
    """The timer of a periodic chore: `due()` answers True at most once per `period_s`,
    the first time at once; `restart()` counts a new period from now (the chore was
    just done anyway)."""

    __slots__ = ("_clock", "_last", "period_s")

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < self.period_s:
            return False
        self._last = now
        return True

    def restart(self) -> None:
        self._last = self._clock()


@dataclass(frozen=True, slots=True)
class Valve:
    """Archive outside the window anyway once the backlog is too big or too old."""

    max_backlog: int
    max_age_s: float

    def open(self, backlog: int, oldest_age_s: float | None) -> bool:
        if backlog >= self.max_backlog:
            return True
        return oldest_age_s is not None and oldest_age_s >= self.max_age_s


@dataclass(frozen=True, slots=True)
class Decision:
    drain_now: bool
    reason: str
    wait_s: float  # when not draining now: how long to sleep before deciding again


def decide(
    schedule: ArchiveSchedule,
    *,
    now: datetime,
    seconds_since_last_run: float | None,
    interval_s: float,
    window: CronWindow,
    valve: Valve,
    backlog: int,
    oldest_age_s: float | None,
) -> Decision:
    """For the `interval` and `cron` schedules: drain now, or wait how long."""
    if schedule is ArchiveSchedule.continuous:
        return Decision(True, "continuous", 0.0)
    if schedule is ArchiveSchedule.interval:
        if seconds_since_last_run is None or seconds_since_last_run >= interval_s:
            return Decision(True, "interval", 0.0)
        return Decision(False, "interval", interval_s - seconds_since_last_run)
    if window.contains(now):
        # Inside the window run like `interval`, but at least every CHECK_EVERY_S.
        period = min(interval_s, CHECK_EVERY_S)
        if seconds_since_last_run is None or seconds_since_last_run >= period:
            return Decision(True, "in the off-peak window", 0.0)
        return Decision(False, "in the off-peak window", period - seconds_since_last_run)
    if valve.open(backlog, oldest_age_s):
        return Decision(True, "safety valve: backlog too big or too old", 0.0)
    # Look at the valve again every CHECK_EVERY_S (sooner with a shorter interval).
    wait = min(CHECK_EVERY_S, interval_s, window.seconds_until_open(now))
    return Decision(False, "outside the off-peak window", wait)
