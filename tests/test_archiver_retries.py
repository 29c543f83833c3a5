"""Waiting out an outage (no services): an operation is attempted again until it works,
the operator is told once when the outage starts and once when it ends, the gauge follows,
and a stop asked meanwhile ends the wait."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import REGISTRY

from chatroom.archiver.retries import Dependency, Stopped, pause


def _gauge(label: str) -> float | None:
    return REGISTRY.get_sample_value("chatroom_archiver_outage", {"dependency": label})


async def test_an_operation_is_retried_through_an_outage_told_once_each_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="chatroom.archiver")
    sql = Dependency("retries-test-sql", "SQL", down=(ConnectionError,))
    seen_during: list[tuple[bool, float | None]] = []
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            seen_during.append((sql.down, _gauge("retries-test-sql")))
        if attempts < 4:
            raise ConnectionRefusedError("connection refused")
        return "written"

    assert await sql.call(flaky) == "written"
    assert attempts == 4
    assert seen_during == [(True, 1.0)] * 3  # down, and the gauge says so, until it worked
    assert not sql.down and _gauge("retries-test-sql") == 0.0
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert lines[0] == (
        "SQL is unreachable (connection refused); waiting it out, the backlog stays in Redis"
    )
    assert lines[1].startswith("SQL is back after ") and lines[1].endswith(" 3 failed attempts")


async def test_an_error_that_is_not_an_outage_raises_at_once() -> None:
    redis = Dependency("retries-test-redis", "Redis", down=(ConnectionError,))
    attempts = 0

    async def wrong() -> None:
        nonlocal attempts
        attempts += 1
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        await redis.call(wrong)
    assert attempts == 1 and not redis.down


async def test_a_stop_during_an_outage_ends_the_wait_with_stopped() -> None:
    sql = Dependency("retries-test-stop", "SQL", down=(ConnectionError,))
    sql.stop = asyncio.Event()
    attempts = 0

    async def down_for_good() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 3:
            # Asked while the next backoff is being waited out: it ends at once.
            asyncio.get_running_loop().call_soon(sql.stop.set)
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(Stopped):
        await asyncio.wait_for(sql.call(down_for_good), 10)
    assert attempts == 3
    assert sql.down  # still down: the next run waits on, and tells when it is back
    with pytest.raises(Stopped):
        await sql.call(down_for_good)  # a stopped run does not even wait once
    assert attempts == 4


async def test_pause_ends_early_when_stop_is_set() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_soon(stop.set)
    await asyncio.wait_for(pause(stop, 3600), 10)
    await pause(stop, -1.0)  # a negative wait is no wait
