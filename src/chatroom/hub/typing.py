"""Typing frames: at most one per user and room per `typing_interval_s`, across all the
user's sockets and every node.

Typing is advisory (the one a moment ago still shows), so a frame over the limit is
dropped without an answer. Each connection first checks its own last typing frame in
memory, so a socket repeating itself costs no Redis round trip; the first frame of an
interval then claims the (user, room) mark in Redis (SET NX with the interval as its
expiry), and only the claimant's frame is passed on: eight tabs, or eight nodes, of one
user say it once.
"""

from __future__ import annotations

from redis.asyncio import Redis

from chatroom import redis_keys


class TypingGate:
    def __init__(self, redis: Redis, interval_s: float) -> None:
        self._redis = redis
        self.interval_s = interval_s
        self._interval_ms = max(1, int(interval_s * 1000))

    async def claim(self, slug: str, user_id: int) -> bool:
        """True: this typing frame is the user's first in the room this interval."""
        claimed = await self._redis.set(
            redis_keys.room_typing(slug, user_id), b"1", nx=True, px=self._interval_ms
        )
        return bool(claimed)
