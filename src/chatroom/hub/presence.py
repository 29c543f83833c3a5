"""Who is online in a room, kept in Redis so that every node sees the same list.

Per room: a sorted set of online user ids scored by their latest heartbeat expiry, one
sorted set per user of their connections to the room (same score), and a hash of the
users' profiles. Each node refreshes the expiry of its own connections every quarter of
`expiry_ms`; when a node dies its entries expire and the next sweep (by any node with
subscribers in the room) turns them into one leave per user. Every change is one Lua
script, so a user with tabs on several nodes joins once and leaves once.

Joins and leaves of many connections at once (a node's sockets all closing, a crowd
reconnecting) are queued and sent together, one pipeline per round trip, so a storm costs
a few connections of the pool rather than one per socket.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from chatroom import redis_keys
from chatroom.domain.events import Author
from chatroom.redis_client import script_calls

# KEYS: room users, the user's connections, profiles. ARGV: user id, connection id,
# expiry ms, now ms, profile JSON. Returns 1 when the user was not online before.
_JOIN = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
local had = redis.call('ZCARD', KEYS[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('PEXPIREAT', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[1], 'GT', ARGV[3], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
if had == 0 then return 1 end
return 0
"""

# KEYS: room users, the user's connections, profiles. ARGV: user id, connection id, now ms.
# Returns 1 when that was the user's last live connection to the room.
_LEAVE = """
if redis.call('ZREM', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
local rest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #rest > 0 then
  redis.call('ZADD', KEYS[1], rest[2], ARGV[1])
  return 0
end
redis.call('HDEL', KEYS[3], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
"""

# KEYS: room users, the user's connections. ARGV: user id, connection id, expiry ms.
# Only a connection still listed is refreshed: one that left meanwhile stays gone.
_REFRESH = """
if not redis.call('ZSCORE', KEYS[2], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('PEXPIREAT', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[1], 'GT', ARGV[3], ARGV[1])
return 1
"""

# KEYS: room users, the user's connections, profiles. ARGV: user id, now ms.
# Returns the profile JSON when an expired user has no live connection left: a leave.
_SWEEP = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return false end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
local rest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #rest > 0 then
  redis.call('ZADD', KEYS[1], rest[2], ARGV[1])
  return false
end
redis.call('ZREM', KEYS[1], ARGV[1])
local profile = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return profile or false
"""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _keys(slug: str, user_id: int) -> list[str]:
    return [
        redis_keys.room_presence(slug),
        redis_keys.room_presence_connections(slug, user_id),
        redis_keys.room_presence_profiles(slug),
    ]


def _profile(author: Author) -> str:
    return json.dumps(author.as_json(), ensure_ascii=False, separators=(",", ":"))


def _author(raw: bytes | str) -> Author | None:
    try:
        obj = json.loads(raw)
        return Author(int(obj["id"]), str(obj["username"]), str(obj["display_name"]))
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class Presence:
    """One connection in one room."""

    slug: str
    user: Author
    connection_id: str


_Call = tuple[AsyncScript, list[str], list[str | int], "asyncio.Future[Any]"]


class _ScriptBatches:
    """Script calls queued by many connections, sent in one pipeline per round trip: one
    task sends what has queued up while the previous pipeline was on its way."""

    def __init__(self, redis: Redis, max_batch: int = 512) -> None:
        self._redis = redis
        self._max_batch = max_batch
        self._queue: list[_Call] = []
        self._sender: asyncio.Task[None] | None = None

    async def call(self, script: AsyncScript, keys: list[str], args: list[str | int]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_all(), name="presence-batches")
        return await future

    async def _send_all(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for script, keys, args, _ in batch:
                        await script(keys=keys, args=args, client=pipe)
                    results = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # the round trip failed: every call of it did
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (*_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue  # its caller was cancelled meanwhile
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


class PresenceBoard:
    def __init__(self, redis: Redis, expiry_ms: int) -> None:
        self._redis = redis
        self.expiry_ms = expiry_ms
        self._join = redis.register_script(_JOIN)
        self._leave = redis.register_script(_LEAVE)
        self._refresh = redis.register_script(_REFRESH)
        self._sweep = redis.register_script(_SWEEP)
        self._batches = _ScriptBatches(redis)

    async def join(self, entry: Presence) -> bool:
        """Mark the connection online in the room; True when the user just came online."""
        now = _now_ms()
        args: list[str | int] = [
            entry.user.id,
            entry.connection_id,
            now + self.expiry_ms,
            now,
            _profile(entry.user),
        ]
        return bool(await self._batches.call(self._join, _keys(entry.slug, entry.user.id), args))

    async def leave(self, entry: Presence) -> bool:
        """Mark the connection gone; True when it was the user's last one in the room."""
        args: list[str | int] = [entry.user.id, entry.connection_id, _now_ms()]
        return bool(await self._batches.call(self._leave, _keys(entry.slug, entry.user.id), args))

    async def refresh(self, entries: list[Presence]) -> None:
        """The node's heartbeat: push the expiry of all its connections forward."""
        if not entries:
            return
        expiry = _now_ms() + self.expiry_ms
        await script_calls(
            self._redis,
            [
                (
                    self._refresh,
                    _keys(entry.slug, entry.user.id)[:2],
                    [entry.user.id, entry.connection_id, expiry],
                )
                for entry in entries
            ],
        )

    async def sweep(self, slug: str) -> list[Author]:
        """Users of the room whose every connection expired (a dead node's): they left."""
        now = _now_ms()
        expired: list[bytes] = await self._redis.zrangebyscore(  # type: ignore[assignment]
            redis_keys.room_presence(slug), "-inf", now
        )
        left = []
        for raw_id in expired:
            user_id = int(raw_id)
            profile = await self._sweep(keys=_keys(slug, user_id), args=[user_id, now])
            if profile:
                user = _author(profile)
                if user is not None:
                    left.append(user)
        return left

    async def online(self, slug: str) -> list[Author]:
        """The users online in the room now, by username."""
        return await online_users(self._redis, slug)


async def online_users(redis: Redis, slug: str) -> list[Author]:
    """The users online in a room now, by username."""
    ids: list[bytes] = await redis.zrangebyscore(  # type: ignore[assignment]
        redis_keys.room_presence(slug), f"({_now_ms()}", "+inf"
    )
    if not ids:
        return []
    profiles = await redis.hmget(redis_keys.room_presence_profiles(slug), ids)
    found = [_author(raw) for raw in profiles if raw is not None]
    return sorted((user for user in found if user is not None), key=lambda u: u.username)


async def online_counts(redis: Redis, slugs: list[str]) -> dict[str, int]:
    """How many users are online in each room."""
    if not slugs:
        return {}
    floor = f"({_now_ms()}"
    async with redis.pipeline(transaction=False) as pipe:
        for slug in slugs:
            pipe.zcount(redis_keys.room_presence(slug), floor, "+inf")
        counts = await pipe.execute()
    return {slug: int(count) for slug, count in zip(slugs, counts, strict=True)}
