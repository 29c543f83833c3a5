"""When the archiver runs: continuously, every X seconds, or in an off-peak window with a
safety valve. Pure decisions on a clock the caller passes in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chatroom.settings import ArchiveSchedule

# How often a waiting schedule looks again (the valve, the window, a stop request).
CHECK_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class Window:
    """A daily UTC window in minutes of the day; `end` before `start` wraps past midnight."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> Window:
        try:
            first, second = text.split("-")
            start_h, start_m = (int(p) for p in first.split(":"))
            end_h, end_m = (int(p) for p in second.split(":"))
        except ValueError:
            raise ValueError(f"not a window like 02:00-06:00: {text!r}") from None
        if not (0 <= start_h < 24 and 0 <= end_h < 24 and 0 <= start_m < 60 and 0 <= end_m < 60):
            raise ValueError(f"not a window like 02:00-06:00: {text!r}")
        return cls(start_h * 60 + start_m, end_h * 60 + end_m)

    def contains(self, moment: datetime) -> bool:
        minute = moment.hour * 60 + moment.minute
        if self.start == self.end:  # 00:00-00:00: the whole day
            return True
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def seconds_until_open(self, moment: datetime) -> float:
        if self.contains(moment):
            return 0.0
        now_s = moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6
        return (self.start * 60 - now_s) % 86400


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
    window: Window,
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
