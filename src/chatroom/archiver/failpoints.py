"""Deterministic crash points for the fault tests.

CHATROOM_FAILPOINT names one point (`after_read`, `after_insert_before_commit`,
`between_writer_commits` (one parallel writer of a batch committed, another not yet),
`after_commit_before_ack`, `after_ack_before_trim`, `after_claim`); when the archiver
reaches it for the CHATROOM_FAILPOINT_AFTER-th time (default 1), the process kills
itself with SIGKILL: no cleanup, no finally blocks, exactly like `kill -9`. A test that
runs archivers in its own process gives an `action` instead (say, raising an exception
that ends that archiver alone).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass

POINT_ENV = "CHATROOM_FAILPOINT"
AFTER_ENV = "CHATROOM_FAILPOINT_AFTER"

POINTS = frozenset(
    {
        "after_read",
        "after_insert_before_commit",
        "between_writer_commits",
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
    action: Callable[[], None] | None = None  # None: SIGKILL this process

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
            if self.action is not None:
                self.action()
                return
            os.kill(os.getpid(), signal.SIGKILL)

    def arm(self, point: str, after: int = 1) -> None:
        """Fire at the `after`-th time `point` is reached from now on."""
        self.point, self.after, self.reached = point, after, 0
