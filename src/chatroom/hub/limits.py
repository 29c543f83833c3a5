"""Per-user and per-connection limits: sends per second and frames per second (token
buckets), and open connections.

Every frame a connection sends spends tokens from that connection's bucket, whatever its
type (a subscribe costs `SUBSCRIBE_FRAME_COST`: it reads Redis and SQL); an empty bucket
answers `rate_limited` with `retry_after_ms` and the frame is not served. The bucket is
plain arithmetic on the connection's own object: no lock, no Redis, a clock read.

The send bucket is shared by all of a user's connections to this node, and it outlives
them until it has refilled: a disconnect and reconnect buys no fresh burst. It is kept in
memory, not in Redis, so a send costs no extra round trip. The connection count is kept
in Redis, so it holds across every node.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from chatroom import redis_keys
from chatroom.redis_client import script_calls


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up."""

    rate: float
    burst: int
    tokens: float
    updated: float

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take `cost` tokens: 0.0 when allowed, else the seconds until they are there."""
        tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if tokens >= cost:
            self.tokens = tokens - cost
            return 0.0
        self.tokens = tokens
        return (cost - tokens) / self.rate

    def level(self, now: float) -> float:
        """The tokens saved up at `now`."""
        return min(float(self.burst), self.tokens + (now - self.updated) * self.rate)


def wait_ms(seconds: float) -> int:
    """A bucket's wait as the `retry_after_ms` of a `rate_limited` error (at least 1)."""
    return max(1, math.ceil(seconds * 1000))


def frame_bucket(rate: float, burst: int, now: float) -> TokenBucket:
    """A new connection's frame bucket, full."""
    return TokenBucket(rate, burst, float(burst), now)


class SendLimiter:
    """One bucket per user. A bucket is forgotten only once it is full again, since a
    full bucket and a new one are the same: whether the user is connected does not
    matter, so reconnecting cannot reset it."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[int, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def retry_after_ms(self, user_id: int) -> int:
        """0 when the user may send now; else the milliseconds to wait (at least 1)."""
        now = self._clock()
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = TokenBucket(self._rate, self._burst, float(self._burst), now)
            self._buckets[user_id] = bucket
        wait = bucket.take(now)
        return 0 if wait == 0.0 else wait_ms(wait)

    def forget_full(self) -> None:
        """Drop the buckets that have refilled (the hub calls this at every heartbeat):
        memory holds only users who sent within the last burst / rate seconds."""
        now = self._clock()
        full = [user for user, b in self._buckets.items() if b.level(now) >= self._burst]
        for user_id in full:
            del self._buckets[user_id]


# KEYS: the user's connections. ARGV: connection id, expiry ms, now ms, the maximum.
# Forgets connections whose node stopped refreshing them, then admits if under the maximum.
_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) - tonumber(ARGV[3]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
end
return 1
"""

# KEYS: the user's connections. ARGV: connection id, expiry ms, now ms.
# Only a connection still listed is refreshed: one closed meanwhile stays closed.
_REFRESH = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) - tonumber(ARGV[3]) then
    redis.call('PEXPIREAT', KEYS[1], ARGV[2])
  end
end
return 0
"""


class ConnectionLimit:
    """At most `maximum` open connections per user, counted across all nodes."""

    def __init__(self, redis: Redis, maximum: int, expiry_ms: int) -> None:
        self._redis = redis
        self._maximum = maximum
        self._expiry_ms = expiry_ms
        self._admit = redis.register_script(_ADMIT)
        self._refresh = redis.register_script(_REFRESH)

    async def admit(self, user_id: int, connection_id: str) -> bool:
        now = int(time.time() * 1000)
        keys = [redis_keys.user_connections(user_id)]
        args: list[str | int] = [connection_id, now + self._expiry_ms, now, self._maximum]
        return bool(await self._admit(keys=keys, args=args))

    async def refresh(self, connections: list[tuple[int, str]]) -> None:
        """Keep these (user id, connection id) counted: the node's heartbeat."""
        if not connections:
            return
        now = int(time.time() * 1000)
        await script_calls(
            self._redis,
            [
                (
                    self._refresh,
                    [redis_keys.user_connections(user_id)],
                    [connection_id, now + self._expiry_ms, now],
                )
                for user_id, connection_id in connections
            ],
        )

    async def release(self, user_id: int, connection_id: str) -> None:
        await self._redis.zrem(redis_keys.user_connections(user_id), connection_id)
