"""How the archiver waits out a Redis or SQL outage: one `Dependency` for each.

A failed attempt counts against the dependency's `Outage` (a warning when the outage
starts and one when it ends, never one per retry), sets the gauge
`chatroom_archiver_outage{dependency=...}`, and sleeps a capped, jittered backoff before
the next attempt. The backlog meanwhile waits in the streams. Stop asked during an outage
raises `Stopped`: the batch in hand stays pending for the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chatroom.archiver import metrics
from chatroom.outages import Backoff, Outage, first_line

log = logging.getLogger(__name__)

T = TypeVar("T")


class Stopped(Exception):
    """Stop was asked during an outage: leave the batch pending for the next run."""


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or until `stop` is set if that comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))


class Dependency:
    """Redis or SQL as one archiver sees it: up or down, and how long to wait before the
    next attempt. It outlives the archiver's runs, so that an outage and its gauge end
    when a later run reaches the dependency again."""

    def __init__(self, label: str, name: str, *, down: tuple[type[BaseException], ...]) -> None:
        self.label = label  # the gauge's `dependency` label: "redis" or "sql"
        self._down = down  # the errors that mean "not reachable now"
        self._outage = Outage(name, "waiting it out, the backlog stays in Redis", log)
        self._backoff = Backoff()
        # The running archiver's stop request, set by the archiver as each run starts.
        self.stop = asyncio.Event()

    @property
    def down(self) -> bool:
        return self._outage.down

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """`operation()`, attempted again after each failure that means "down" until it
        succeeds; `Stopped` if stop is asked meanwhile. Other errors raise at once."""
        while True:
            try:
                result = await operation()
            except self._down as exc:
                await self.failed(exc)
                continue
            self.recovered()
            return result

    async def failed(self, exc: BaseException) -> None:
        """Count a failed attempt, then wait out the backoff (`Stopped` on a stop)."""
        if self._outage.failed(first_line(exc)) is not None:
            metrics.OUTAGE.labels(self.label).set(1)
        if self.stop.is_set():
            raise Stopped
        await pause(self.stop, self._backoff.next_delay())
        if self.stop.is_set():
            raise Stopped

    def recovered(self) -> None:
        """Count a successful attempt: ends the outage, if there was one."""
        self._backoff.reset()
        if self._outage.recovered() is not None:
            metrics.OUTAGE.labels(self.label).set(0)
