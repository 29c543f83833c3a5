"""Fixed-window attempt counters in Redis, shared by every app node.

Counted before the work they protect (a password hash): a burst of parallel attempts
cannot slip through while earlier ones are still being hashed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

from chatroom import redis_keys

# KEYS: the counter. ARGV: window ms, limit. Returns 0 when allowed, else ms to wait.
_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n <= tonumber(ARGV[2]) then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return ttl
"""


@dataclass(frozen=True, slots=True)
class Limit:
    scope: str  # what is counted: "login-user", "login-address", "register-address"
    subject: str  # who: a username digest or a client address
    attempts: int
    window_s: int


class Throttle:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._hit = redis.register_script(_HIT)

    async def hit(self, limits: list[Limit]) -> int:
        """Count one attempt against every limit; 0 if all allow it, else seconds to wait."""
        # One script call per key (not one script over all): keys of different subjects
        # may live in different Redis Cluster slots.
        async with self._redis.pipeline(transaction=False) as pipe:
            for limit in limits:
                key = redis_keys.throttle(limit.scope, limit.subject)
                await self._hit(
                    keys=[key], args=[limit.window_s * 1000, limit.attempts], client=pipe
                )
            waits = await pipe.execute()
        longest_ms = max((int(w) for w in waits), default=0)
        return math.ceil(longest_ms / 1000) if longest_ms > 0 else 0
