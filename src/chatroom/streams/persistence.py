"""Could this Redis lose an acknowledged message? Ask it, and say so plainly."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)


class PersistenceAtRisk(RuntimeError):
    pass


@dataclass(frozen=True)
class PersistenceReport:
    appendonly: bool | None
    appendfsync: str | None
    maxmemory_policy: str | None
    problems: list[str] = field(default_factory=list)

    @property
    def persistence_ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "appendonly": self.appendonly,
            "appendfsync": self.appendfsync,
            "maxmemory_policy": self.maxmemory_policy,
            "persistence_ok": self.persistence_ok,
            "problems": self.problems,
        }


async def _config(redis: Redis, name: str) -> str | None:
    try:
        answer: dict[Any, Any] = await redis.config_get(name)
    except ResponseError:  # CONFIG is often disabled on managed Redis
        return None
    value = answer.get(name.encode()) or answer.get(name)
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else None


async def check_persistence(redis: Redis) -> PersistenceReport:
    appendonly = await _config(redis, "appendonly")
    appendfsync = await _config(redis, "appendfsync")
    policy = await _config(redis, "maxmemory-policy")
    problems = []
    if appendonly is None:
        problems.append("cannot read Redis CONFIG: persistence unknown")
    elif appendonly != "yes":
        problems.append(
            "Redis runs without AOF (appendonly no): acknowledged messages not yet archived "
            "are lost if Redis restarts"
        )
    if policy is not None and policy != "noeviction":
        problems.append(
            f"Redis maxmemory-policy is {policy}: under memory pressure it may evict a "
            "stream with unarchived messages; use noeviction"
        )
    return PersistenceReport(
        appendonly=None if appendonly is None else appendonly == "yes",
        appendfsync=appendfsync,
        maxmemory_policy=policy,
        problems=problems,
    )


async def enforce_persistence(redis: Redis, *, strict: bool) -> PersistenceReport:
    """Warn (or, when strict, refuse) when acknowledged messages could be lost."""
    report = await check_persistence(redis)
    for problem in report.problems:
        if strict:
            raise PersistenceAtRisk(
                f"{problem} (refusing to start: CHATROOM_REDIS_REQUIRE_PERSISTENCE is on)"
            )
        log.warning("%s", problem)
    return report
