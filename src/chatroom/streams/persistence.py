"""Could this Redis lose an acknowledged message? Ask it, and say so plainly.

The answer depends on what a send's ack waits for (`Settings.durability`, PRODUCT.md
invariant 11) and on the server's persistence configuration:

- `fsync`: the ack waits until the append is fsynced to the AOF. Redis must run
  `appendfsync always`, under which it fsyncs each event loop's writes before it replies
  to any of them (a group commit); the embedded server is started so. Without AOF, or
  with another `appendfsync`, the mode cannot be honoured: start-up refuses
  (`DurabilityUnavailable`) rather than ack falsely. WAITAOF is not relied on: under
  `everysec` it confirms writes no fsync has reached (redis/redis#13793, Redis 7.4.0 to
  7.4.2; Valkey 9.1.2 measured here: 3,527 confirmations in 2 s with 7 fsyncs).
- `write`: the ack follows the stream write. What a crash of Redis can then lose is
  Redis's `appendfsync` to say: nothing with `always`; with `everysec` up to about 1-2 s
  of acknowledged sends on a kill -9 (Redis may hold writes back while a slow fsync runs)
  or a power loss; with `no` what the kernel had not written yet; without AOF everything
  not yet archived.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from chatroom.redis_cluster import is_cluster, on_each_master
from chatroom.settings import AckDurability

log = logging.getLogger(__name__)


class PersistenceAtRisk(RuntimeError):
    pass


class DurabilityUnavailable(RuntimeError):
    """`ack_durability = fsync` on a Redis that cannot fsync an append before the ack."""


@dataclass(frozen=True)
class PersistenceReport:
    appendonly: bool | None
    appendfsync: str | None
    maxmemory_policy: str | None
    ack_durability: AckDurability | None = None  # None: a process that acks no sends
    problems: list[str] = field(default_factory=list)

    @property
    def persistence_ok(self) -> bool:
        return not self.problems

    @property
    def durable_against_kill(self) -> bool:
        """Whether an ack survives a kill -9 or power loss of the Redis process."""
        return self.appendonly is True and self.appendfsync == "always"

    @property
    def guarantee(self) -> str:
        """One plain sentence: what an ack means on this Redis, in this mode."""
        mode = self.ack_durability
        if mode is None:
            return "this process acknowledges no sends"
        if self.appendonly is None:
            return f"ack_durability {mode}: unknown (cannot read Redis CONFIG)"
        if self.appendonly is False:
            return (
                f"ack_durability {mode}, AOF off: a Redis restart loses every acknowledged "
                "message not yet archived to SQL"
            )
        if mode is AckDurability.fsync:
            if not self.durable_against_kill:  # CONFIG changed since the start, say
                return (
                    f"ack_durability fsync, but Redis runs appendfsync {self.appendfsync}: "
                    "NOT durable against a crash until it is set back to always"
                )
            return (
                "ack_durability fsync (appendfsync always): an acknowledged message is on "
                "disk; a kill -9 or power loss of Redis loses none"
            )
        if self.appendfsync == "always":
            return (
                "ack_durability write, appendfsync always: Redis fsyncs before it replies; a "
                "kill -9 or power loss of Redis loses no acknowledged message"
            )
        if self.appendfsync == "everysec":
            return (
                "ack_durability write, appendfsync everysec: NOT durable against a crash: a "
                "kill -9 of Redis (while a slow fsync holds writes back) or a power loss can "
                "lose up to about 1-2 s of acknowledged messages"
            )
        return (
            f"ack_durability write, appendfsync {self.appendfsync}: NOT durable against a "
            "crash: a kill -9 or power loss of Redis can lose acknowledged messages the "
            "kernel had not written (up to about 30 s)"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "appendonly": self.appendonly,
            "appendfsync": self.appendfsync,
            "maxmemory_policy": self.maxmemory_policy,
            "ack_durability": None if self.ack_durability is None else str(self.ack_durability),
            "durable_against_kill": self.durable_against_kill,
            "guarantee": self.guarantee,
            "persistence_ok": self.persistence_ok,
            "problems": self.problems,
        }


async def _config(redis: Redis, name: str) -> str | None:
    """A setting of the server; on a cluster, of every master: the first that differs
    from the first master's (so one master without AOF shows), None if any hides it."""
    if is_cluster(redis):
        answers = (await on_each_master(redis, "CONFIG", "GET", name)).values()
        values = [None if isinstance(a, Exception) else _value(a, name) for a in answers]
        if not values or None in values:
            return None
        return next((v for v in values if v != values[0]), values[0])
    try:
        answer: dict[Any, Any] = await redis.config_get(name)
    except ResponseError:  # CONFIG is often disabled on managed Redis
        return None
    return _value(answer, name)


def _value(answer: Any, name: str) -> str | None:
    if not isinstance(answer, dict):
        return None
    value = answer.get(name.encode()) or answer.get(name)
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else None


def fsync_refusal(report: PersistenceReport) -> str | None:
    """Why `ack_durability = fsync` cannot be honoured on this Redis, with the fix; None
    when it can."""
    if report.ack_durability is not AckDurability.fsync:
        return None
    fallback = "or set CHATROOM_ACK_DURABILITY=write to ack after the stream write alone"
    if report.appendonly is None:
        return (
            "ack_durability is fsync but Redis's CONFIG cannot be read, so whether it has AOF "
            f"is unknown; allow CONFIG GET, {fallback}"
        )
    if not report.appendonly:
        return (
            "ack_durability is fsync but Redis runs without AOF (appendonly no), so no ack "
            f"could wait for an fsync; turn it on (appendonly yes), {fallback}"
        )
    if report.appendfsync != "always":
        return (
            f"ack_durability is fsync but Redis runs appendfsync {report.appendfsync}, under "
            "which an acknowledged write can wait up to a second for its fsync; set "
            f"appendfsync always, {fallback}"
        )
    return None


async def check_persistence(
    redis: Redis, ack_durability: AckDurability | None = None
) -> PersistenceReport:
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
    report = PersistenceReport(
        appendonly=None if appendonly is None else appendonly == "yes",
        appendfsync=appendfsync,
        maxmemory_policy=policy,
        ack_durability=ack_durability,
        problems=problems,
    )
    refusal = fsync_refusal(report)
    if refusal is not None:
        problems.append(refusal)
    elif ack_durability is AckDurability.write and report.appendonly:
        # Not certified as safe: everysec (or no) can lose acknowledged sends.
        problems += [] if report.durable_against_kill else [report.guarantee]
    return report


async def enforce_persistence(
    redis: Redis, *, strict: bool, ack_durability: AckDurability | None = None
) -> PersistenceReport:
    """Warn (or, when strict, refuse) when acknowledged messages could be lost; refuse
    always when `ack_durability = fsync` cannot be honoured."""
    report = await check_persistence(redis, ack_durability)
    refusal = fsync_refusal(report)
    if refusal is not None:
        raise DurabilityUnavailable(refusal)
    for problem in report.problems:
        if strict:
            raise PersistenceAtRisk(
                f"{problem} (refusing to start: CHATROOM_REDIS_REQUIRE_PERSISTENCE is on)"
            )
        log.warning("%s", problem)
    if ack_durability is not None:
        log.info("acknowledged sends: %s", report.guarantee)
    return report
