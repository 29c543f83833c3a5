"""Fixed-window attempt counters in Redis, shared by every app node.

Counted before the work they protect (a password hash): a burst of parallel attempts
cannot slip through while earlier ones are still being hashed.

Logins are counted so that nobody can lock another person out (`LoginThrottle`): an
address is limited on its own, a username is limited per address, and only attempts
within both of those count towards the looser limit of the account as a whole, which an
address the user logged in from before does not answer to at all.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass

from redis.asyncio import Redis

from chatroom import redis_keys

# One fixed-window counter: count an attempt; 0 when within the limit, else ms to wait.
_COUNT = """
local function hit(key, window, limit)
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, window) end
  if n <= limit then return 0 end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, window)
    ttl = window
  end
  return ttl
end
"""

# KEYS: the counter. ARGV: window ms, limit. Returns 0 when allowed, else ms to wait.
_HIT = _COUNT + "return hit(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))\n"

# One account's login counters (one hash tag: one Redis Cluster slot).
# KEYS: attempts from this address, attempts from everywhere, this address's known mark.
# ARGV: the address's window ms and limit, the account's window ms and limit.
# Returns 0 when allowed, else ms to wait. The account counts an attempt only when the
# address was within its limit, and not at all from an address known to the account.
_LOGIN = (
    _COUNT
    + """
local wait = hit(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait > 0 then return wait end
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
return hit(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
"""
)

# How long an address stays known to an account after a login from it.
KNOWN_ADDRESS_S = 30 * 24 * 3600


def address_block(address: str) -> str:
    """The client a throttle counts: an IPv4 address as it is, an IPv6 address by its /64.

    One IPv6 subscriber gets a whole /64 (often more) and picks any address in it at
    will; counted per address, every attempt would come from a fresh one.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # "unknown", or a Unix socket's path: one bucket each
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def subject(text: str) -> str:
    """A fixed-size Redis key part for any input, and no raw user input in key names."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _seconds(wait_ms: int) -> int:
    return math.ceil(wait_ms / 1000) if wait_ms > 0 else 0


@dataclass(frozen=True, slots=True)
class Limit:
    scope: str  # what is counted: "login-address", "register-address"
    subject: str  # who: a digest of a client address (block)
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
        return _seconds(max((int(w) for w in waits), default=0))


@dataclass(frozen=True, slots=True)
class LoginLimits:
    per_address: int  # attempts per address block per minute, any usernames
    per_account_and_address: int  # attempts on one username per address block per minute
    per_account: int  # attempts on one username per hour, from addresses within their limits


class LoginThrottle:
    """Login attempts (and password changes: the same guess), counted before any hash."""

    def __init__(self, redis: Redis, limits: LoginLimits) -> None:
        self._redis = redis
        self._limits = limits
        self._addresses = Throttle(redis)
        self._login = redis.register_script(_LOGIN)

    async def attempt(self, account: str, address: str) -> int:
        """Count an attempt on `account` (a username key) from `address`; 0 if allowed,
        else the seconds to wait. An address over its own limit counts nothing more."""
        block = subject(address_block(address))
        wait = await self._addresses.hit(
            [Limit("login-address", block, self._limits.per_address, 60)]
        )
        if wait:
            return wait
        name = subject(account)
        wait_ms = await self._login(
            keys=[
                redis_keys.login_attempts(name, block),
                redis_keys.login_attempts(name, None),
                redis_keys.login_known_address(name, block),
            ],
            args=[
                60_000,
                self._limits.per_account_and_address,
                3_600_000,
                self._limits.per_account,
            ],
        )
        return _seconds(int(wait_ms))

    async def succeeded(self, account: str, address: str) -> None:
        """A right password from `address`: its count on the account starts afresh, and
        the account's own limit no longer applies to it (the owner's device)."""
        name, block = subject(account), subject(address_block(address))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(redis_keys.login_attempts(name, block))
            pipe.set(redis_keys.login_known_address(name, block), 1, ex=KNOWN_ADDRESS_S)
            await pipe.execute()
