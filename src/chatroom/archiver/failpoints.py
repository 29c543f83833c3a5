"""Deterministic crash points for the fault tests.

CHATROOM_FAILPOINT names one point (`after_read`, `after_insert_before_commit`,
`after_commit_before_ack`, `after_ack_before_trim`, `after_claim`); when the archiver
reaches it for the CHATROOM_FAILPOINT_AFTER-th time (default 1), the process kills
itself with SIGKILL: no cleanup, no finally blocks, exactly like `kill -9`.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass

POINT_ENV = "CHATROOM_FAILPOINT"
AFTER_ENV = "CHATROOM_FAILPOINT_AFTER"

POINTS = frozenset(
    {
        "after_read",
        "after_insert_before_commit",
        "after_commit_before_ack",
        "after_ack_before_trim",
        "after_claim",
    }
)


class UnknownFailpoint(ValueError):
    pass


@dataclass(slots=True)
class Failpoints:
    point: str | None = None
    after: int = 1
    reached: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Failpoints:
        env = os.environ if env is None else env
        point = env.get(POINT_ENV) or None
        if point is not None and point not in POINTS:
            raise UnknownFailpoint(f"{POINT_ENV}={point!r} is not one of {sorted(POINTS)}")
        try:
            after = int(env.get(AFTER_ENV) or "1")
        except ValueError:
            raise UnknownFailpoint(f"{AFTER_ENV} must be a whole number") from None
        return cls(point, max(1, after))

    def should_fire(self, point: str) -> bool:
        if point != self.point:
            return False
        self.reached += 1
        return self.reached == self.after

    def reach(self, point: str) -> None:
        if self.should_fire(point):
            os.kill(os.getpid(), signal.SIGKILL)
