"""The Redis-side lease of a consumer name: two live archiver processes can never use
the same name, even on hosts with the same host name and a cloned data folder.

The lease is a key holding the holder's token (`consumer_name.lease_token`), with the
heartbeat's TTL, renewed with it. Taking it: SET NX; if another token holds it, it may be
taken over only from a dead holder of this machine and data folder (the slot's file lock,
which the taker holds, proves it dead); else the name is another live process's, and the
archiver tries its next slot.

Redis at maxmemory refuses SET (not PEXPIRE): a lease that cannot be written is renewed
by PEXPIRE, and one that cannot be taken is taken as soon as Redis has room again, so an
archiver starts and runs under OOM (it is what frees the memory).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import Enum
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

from chatroom import redis_keys
from chatroom.archiver.consumer_name import ConsumerLease, lease_consumer_name, same_holder_place

log = logging.getLogger(__name__)

# Runs a Redis operation through outages (`retries.Dependency.call`).
TakeCall = Callable[[Callable[[], Awaitable["Taken"]]], Awaitable["Taken"]]

# KEYS: the lease. ARGV: our token, TTL (ms). Returns 1 (ours, renewed), 0 (another's),
# or 2 (it had lapsed and is ours again). PEXPIRE works under maxmemory; SET does not.
_RENEW = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if held then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2
"""

# KEYS: the lease. ARGV: our token. Deletes it only if it is ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Taken(Enum):
    YES = "yes"
    ELSEWHERE = "elsewhere"  # a live process elsewhere holds the name
    NOT_YET = "not yet"  # Redis is full: nobody else holds it, ours once it has room


class NameLease:
    def __init__(self, redis: Redis, consumer: str, token: str, ttl_s: float) -> None:
        self.consumer = consumer
        self._redis = redis
        self._key = redis_keys.archiver_name_lease(consumer)
        self._token = token
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self.lost = False  # another process took the name: stop using it

    async def take(self) -> Taken:
        try:
            if await self._redis.set(self._key, self._token, px=self._ttl_ms, nx=True):
                return Taken.YES
        except OutOfMemoryError:
            pass
        held: Any = await self._redis.get(self._key)
        if held is None:
            return Taken.NOT_YET  # the SET was refused: Redis is full
        holder = held.decode() if isinstance(held, bytes) else str(held)
        if holder == self._token:
            return Taken.YES
        if not same_holder_place(self._token, holder):
            return Taken.ELSEWHERE
        # A dead holder of this machine and folder (we hold its slot's lock): take over.
        try:
            await self._redis.set(self._key, self._token, px=self._ttl_ms, xx=True)
        except OutOfMemoryError:
            # Redis is full: keep the old holder's token alive; renew adopts it as ours.
            await self._redis.pexpire(self._key, self._ttl_ms)
            self._token = holder
        return Taken.YES

    async def renew(self) -> bool:
        """Extend the lease; False (and `lost`) when another process holds the name now.
        Redis full while the lease had lapsed: skipped, tried again next time."""
        try:
            held = int(await self._renew(keys=[self._key], args=[self._token, self._ttl_ms]))
        except OutOfMemoryError:
            return True
        if held == 0:
            self.lost = True
            log.error(
                "archiver %s: another process took this consumer name (its lease lapsed "
                "while Redis could not be reached): leaving it for a new one",
                self.consumer,
            )
        return held != 0

    async def release(self) -> None:
        await self._release(keys=[self._key], args=[self._token])


async def take_consumer_name(
    redis: Redis, folder: Path, ttl_s: float, call: TakeCall
) -> tuple[ConsumerLease, NameLease]:
    """The lowest slot of `folder` whose name no live process elsewhere holds: its file
    lock and its Redis lease (`call` runs the Redis side through outages)."""
    refused: list[ConsumerLease] = []  # their locks are kept meanwhile: next slot, next
    try:
        while True:
            slot = lease_consumer_name(folder)
            lease = NameLease(redis, slot.name, slot.token, ttl_s)
            try:
                taken = await call(lease.take)
            except BaseException:
                slot.release()
                raise
            if taken is Taken.ELSEWHERE:
                log.warning(
                    "consumer name %s is held by a live archiver on another machine (same "
                    "host name, a copy of this data folder): trying the next slot",
                    slot.name,
                )
                refused.append(slot)
                continue
            if taken is Taken.NOT_YET:
                log.warning("archiver %s: Redis is full; its name lease waits for room", slot.name)
            return slot, lease
    finally:
        for held in refused:
            held.release()
