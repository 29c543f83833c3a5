"""Login sessions kept in Redis, so every app node sees them and a logout is immediate.

The cookie holds a random session id; Redis holds only its SHA-256, so a copy of the
Redis data does not hold usable session ids. A session ends after `idle_s` without use
or `absolute_s` after login, whichever comes first, and when revoked (logout, logout
everywhere, a password change).
The user's name travels with the session: no SQL query per request.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Callable, Collection

from redis.asyncio import Redis

from chatroom import redis_keys
from chatroom.domain.users import User
from chatroom.redis_client import script_calls

SESSION_COOKIE = "chatroom_session"

# KEYS: the session hash. ARGV: now ms, idle ms, absolute ms.
# Returns the session's fields, or nil (expired, revoked, or past its absolute limit).
_TOUCH = """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return nil end
local created = tonumber(redis.call('HGET', KEYS[1], 'created_ms'))
local left = created + tonumber(ARGV[3]) - tonumber(ARGV[1])
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return nil
end
redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[2]), left))
return fields
"""


# KEYS: session hashes. ARGV: the new display name. Renames the live ones only (an ended
# session's key must not come back as a hash without its login time).
_RENAME = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('HSET', key, 'display_name', ARGV[1]) end
end
return #KEYS
"""


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def _plausible(session_id: str) -> bool:
    # token_urlsafe(32) gives 43 characters; anything far off is not ours.
    return 20 <= len(session_id) <= 100 and session_id.isascii()


class SessionStore:
    def __init__(
        self,
        redis: Redis,
        *,
        idle_s: float,
        absolute_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        # The wall clock that dates a session's login for its absolute limit (tests pass
        # their own); the idle limit is the Redis key's expiry, on Redis's clock.
        self._clock = clock
        self._idle_ms = int(idle_s * 1000)
        self._absolute_ms = int(absolute_s * 1000)
        self._absolute_s = math.ceil(absolute_s)
        self._touch = redis.register_script(_TOUCH)
        self._rename = redis.register_script(_RENAME)

    async def create(self, user: User) -> str:
        """A new session for `user`; returns the session id for the cookie."""
        session_id = secrets.token_urlsafe(32)
        digest = _digest(session_id)
        key = redis_keys.session(digest)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(
                key,
                mapping={
                    "user_id": user.id,
                    "username": user.username,
                    "display_name": user.display_name,
                    "is_admin": int(user.is_admin),
                    "created_ms": int(self._clock() * 1000),
                },
            )
            pipe.pexpire(key, min(self._idle_ms, self._absolute_ms))
            pipe.sadd(redis_keys.user_sessions(user.id), digest)
            pipe.expire(redis_keys.user_sessions(user.id), self._absolute_s)
            await pipe.execute()
        return session_id

    async def user(self, session_id: str) -> User | None:
        """The session's user, extending its idle expiry; None if it is not a live session."""
        if not _plausible(session_id):
            return None
        key = redis_keys.session(_digest(session_id))
        now_ms = int(self._clock() * 1000)
        reply = await self._touch(keys=[key], args=[now_ms, self._idle_ms, self._absolute_ms])
        if not reply:
            return None
        fields = {
            reply[i].decode(): reply[i + 1].decode("utf-8", "replace")
            for i in range(0, len(reply), 2)
        }
        try:
            return User(
                id=int(fields["user_id"]),
                username=fields["username"],
                display_name=fields["display_name"],
                is_admin=fields.get("is_admin") == "1",
            )
        except (KeyError, ValueError):
            return None

    async def live(self, session_ids: Collection[str]) -> set[str]:
        """Those of the sessions still live, each idle expiry extended as by `user`: one
        round trip per few hundred (a node's heartbeat checks all its sockets' sessions)."""
        ids = [session_id for session_id in session_ids if _plausible(session_id)]
        now_ms = int(self._clock() * 1000)
        args = [now_ms, self._idle_ms, self._absolute_ms]
        calls = [(self._touch, [redis_keys.session(_digest(s))], args) for s in ids]
        replies = await script_calls(self._redis, calls)
        return {s for s, reply in zip(ids, replies, strict=True) if reply}

    async def rename(self, user_id: int, display_name: str) -> None:
        """The user's new display name, in every live session of theirs (each is one key:
        one script call per key keeps Redis Cluster's one-slot rule)."""
        members = await self._redis.smembers(redis_keys.user_sessions(user_id))
        for member in members:
            digest = member.decode() if isinstance(member, bytes) else str(member)
            await self._rename(keys=[redis_keys.session(digest)], args=[display_name])

    async def revoke(self, session_id: str) -> int | None:
        """End one session; returns its user's id (None: there was no such session)."""
        if not _plausible(session_id):
            return None
        digest = _digest(session_id)
        key = redis_keys.session(digest)
        user_id = await self._redis.hget(key, "user_id")
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(key)
            if user_id is not None:
                pipe.srem(redis_keys.user_sessions(int(user_id)), digest)
            await pipe.execute()
        return None if user_id is None else int(user_id)

    async def revoke_all(self, user_id: int, *, keep: str | None = None) -> int:
        """End every session of a user (all devices) but `keep` (a session id, the one
        asking); returns how many were live."""
        kept = _digest(keep) if keep is not None and _plausible(keep) else None
        index = redis_keys.user_sessions(user_id)
        members = await self._redis.smembers(index)
        digests = [d.decode() if isinstance(d, bytes) else str(d) for d in members]
        ending = [d for d in digests if d != kept]
        if not ending:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for digest in ending:
                pipe.delete(redis_keys.session(digest))
            # Only these leave the index: a login at this very moment stays in it.
            pipe.srem(index, *ending)
            results = await pipe.execute()
        return sum(int(r) for r in results[: len(ending)])
