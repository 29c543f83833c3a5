"""Waiting for a condition in tests: poll a predicate until it holds, within a bound.

A test never sleeps a fixed time hoping that something has happened by then: on a loaded
machine it has not, and on an idle one the sleep is wasted. It waits until the thing it
needs holds, and fails (saying what it waited for) if that takes longer than `timeout`,
a bound far above the expected time that only a real fault reaches.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Far above anything that should take this long on a loaded 2-core machine.
DEFAULT_TIMEOUT_S = 20.0
POLL_INTERVAL_S = 0.02


class WaitTimeout(AssertionError):
    """The condition did not hold within the timeout (a test failure, not an error)."""


async def wait_until(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    what: str | None = None,
    interval: float = POLL_INTERVAL_S,
) -> T:
    """Poll `predicate` (plain or async) until it returns a truthy value, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        held = await value if inspect.isawaitable(value) else value
        if held:
            return held
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"not within {timeout} s: {what or _describe(predicate)}")
        await asyncio.sleep(interval)


def wait_until_sync(
    predicate: Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    what: str | None = None,
    interval: float = POLL_INTERVAL_S,
) -> T:
    """`wait_until` for code outside an event loop (fixtures and tests that are not async)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"not within {timeout} s: {what or _describe(predicate)}")
        time.sleep(interval)


def _describe(predicate: Callable[..., object]) -> str:
    return f"{getattr(predicate, '__qualname__', repr(predicate))}() held"
