"""Waiting out an outage: capped exponential backoff with jitter, and a state that says
when to log (once per change: down, then back), never once per retry."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    base_s: float = 0.1
    cap_s: float = 5.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        """Full jitter: spreads many archivers' reconnects after a shared outage."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(self.attempt, 30))
        self.attempt += 1
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0


@dataclass(slots=True)
class OutageState:
    """Whether a dependency (Redis, SQL) is down, and what to tell the operator."""

    name: str
    down: bool = False
    failures: int = 0
    since: float | None = None

    def failed(self, error: str, now: float) -> str | None:
        """Record a failure; the log line when this starts an outage, else None."""
        self.failures += 1
        if self.down:
            return None
        self.down = True
        self.since = now
        return f"{self.name} is unreachable ({error}); waiting it out, the backlog stays in Redis"

    def recovered(self, now: float) -> str | None:
        """Record a success; the log line when this ends an outage, else None."""
        if not self.down:
            return None
        lasted = now - (self.since or now)
        line = f"{self.name} is back after {lasted:.1f} s and {self.failures} failed attempts"
        self.down = False
        self.failures = 0
        self.since = None
        return line
