"""When Redis or SQL cannot be reached: which errors mean "down", how long to wait before
the next attempt, and what to tell the operator (once when an outage starts and once when
it ends, never once per retry).

Every long-lived loop waits out its outages through this module: the archiver's reads and
writes, the hub's stream and signal readers, and a process waiting to start.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

T = TypeVar("T")

# Redis did not answer (refused, reset, timed out): the same command may work later.
REDIS_DOWN = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    asyncio.TimeoutError,
)
# SQL did not answer, or failed in a way that a later attempt may not repeat.
SQL_DOWN = (SQLAlchemyError, OSError, asyncio.TimeoutError)
# SQL refused these rows (a constraint, a value): the same rows fail again; not an outage.
SQL_REJECTED = (IntegrityError, DataError)
# Anything Redis or SQL can raise while serving one request or frame.
STORE_ERRORS = (RedisError, SQLAlchemyError, OSError)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an error, for a log line or a status field (SQLAlchemy wraps the
    driver's error, whose text is the useful one)."""
    text = str(getattr(exc, "orig", None) or exc) or type(exc).__name__
    return text.splitlines()[0][:limit]


@dataclass(slots=True)
class Backoff:
    """Capped exponential backoff with full jitter, which spreads many processes'
    reconnects after a shared outage."""

    base_s: float = 0.1
    cap_s: float = 5.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(self.attempt, 30))
        self.attempt += 1
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0


@dataclass(slots=True)
class Outage:
    """Whether one dependency is down, and the operator's log line at each change.

    `name` says what is down ("SQL", "Redis (reading the room streams)"); `meanwhile`
    says what the process does about it ("the backlog stays in Redis"). With `log`, each
    line is also logged there as a warning.
    """

    name: str
    meanwhile: str
    log: logging.Logger | None = None
    clock: Callable[[], float] = time.monotonic
    down: bool = False
    failures: int = 0
    since: float = 0.0

    def failed(self, reason: str) -> str | None:
        """Record a failure; the log line when this starts an outage, else None."""
        self.failures += 1
        if self.down:
            return None
        self.down = True
        self.since = self.clock()
        return self._told(f"{self.name} is unreachable ({reason}); {self.meanwhile}")

    def recovered(self) -> str | None:
        """Record a success; the log line when this ends an outage, else None."""
        if not self.down:
            return None
        lasted = self.clock() - self.since
        line = f"{self.name} is back after {lasted:.1f} s and {self.failures} failed attempts"
        self.down = False
        self.failures = 0
        return self._told(line)

    def _told(self, line: str) -> str:
        if self.log is not None:
            self.log.warning("%s", line)
        return line


@dataclass(slots=True)
class Shortcut:
    """After a dependency failed, calls skip it for `quiet_s` rather than wait it out
    again: a loop that asks for many items one after the other (the fan-out's rooms) would
    otherwise wait out the same outage once per item, and stall every other item meanwhile.
    """

    quiet_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _until: float = 0.0

    @property
    def open(self) -> bool:
        """Whether to try the dependency now."""
        return self.clock() >= self._until

    def failed(self) -> None:
        self._until = self.clock() + self.quiet_s


async def when_reachable(
    name: str,
    attempt: Callable[[], Awaitable[T]],
    unreachable: tuple[type[BaseException], ...],
    stop: asyncio.Event,
    log: logging.Logger,
) -> T | None:
    """`attempt()` once `name` answers, for a process that cannot start without it; None
    if `stop` is set first. Errors other than `unreachable` raise at once."""
    outage, backoff = Outage(name, "waiting for it before starting", log), Backoff()
    while True:
        try:
            result = await attempt()
        except unreachable as exc:
            outage.failed(first_line(exc))
            try:
                await asyncio.wait_for(stop.wait(), backoff.next_delay())
            except TimeoutError:
                continue
            return None
        outage.recovered()
        return result
