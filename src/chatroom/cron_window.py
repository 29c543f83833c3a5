"""The cron schedule's off-peak window (`archiver_cron_window`): a daily UTC window of
minutes, parsed once from `02:00-06:00`. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class CronWindow:
    """The cron schedule's off-peak hours: a daily UTC window in minutes of the day,
    written `02:00-06:00`; `end` before `start` wraps past midnight."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> CronWindow:
        match = _WINDOW.match(text)
        if match is None:
            raise ValueError("must look like 02:00-06:00 (UTC, 24-hour clock)")
        start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
        return cls(start_h * 60 + start_m, end_h * 60 + end_m)

    def __str__(self) -> str:
        (start_h, start_m), (end_h, end_m) = divmod(self.start, 60), divmod(self.end, 60)
        return f"{start_h:02d}:{start_m:02d}-{end_h:02d}:{end_m:02d}"

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
