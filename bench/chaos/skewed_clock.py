"""Run a `chatroom` command with its wall clock skewed:
`python -m bench.chaos.skewed_clock OFFSET_S archive`.

The nemesis's clock-skew fault, injected from outside the product: before Chatroom is
imported, `time.time`, `time.time_ns` and `datetime.datetime.now` are replaced by
versions shifted by OFFSET_S seconds (negative: the past). The monotonic clock, which
timers and timeouts use, is left alone, as libfaketime's FAKETIME_DONT_FAKE_MONOTONIC
would. Redis and SQL keep their own clocks: what is skewed is what the archiver believes.
"""

from __future__ import annotations

import datetime
import sys
import time


def skew(offset_s: float) -> None:
    real_time, real_time_ns = time.time, time.time_ns
    offset_ns = int(offset_s * 1e9)
    time.time = lambda: real_time() + offset_s
    time.time_ns = lambda: real_time_ns() + offset_ns
    shift = datetime.timedelta(seconds=offset_s)
    real_now = datetime.datetime.now

    class SkewedDatetime(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> SkewedDatetime:
            return cls.fromtimestamp((real_now(tz) + shift).timestamp(), tz)

        @classmethod
        def utcnow(cls) -> SkewedDatetime:
            return cls.now(datetime.UTC).replace(tzinfo=None)

    datetime.datetime = SkewedDatetime  # type: ignore[misc]


def main() -> None:
    skew(float(sys.argv[1]))
    sys.argv = ["chatroom", *sys.argv[2:]]
    from chatroom.cli import main as chatroom_main

    chatroom_main()


if __name__ == "__main__":
    main()
