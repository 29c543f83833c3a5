"""Ephemeral room frames (presence, typing) between app nodes, over Redis pub/sub.

These are never stored: a node that misses one (a reconnect to Redis) loses nothing that
matters, since the online list is read from Redis with every `subscribed`. Every node,
the sender's included, delivers a signal when it comes back from the channel: one path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from chatroom import redis_keys

log = logging.getLogger(__name__)

RETRY_S = 0.5

# room, the frame's JSON text, a user id whose own connections skip it (or None).
OnSignal = Callable[[str, str, int | None], None]


def _decode(data: Any) -> tuple[str, str, int | None] | None:
    try:
        obj = json.loads(data)
        skip = obj.get("skip")
        return str(obj["room"]), str(obj["frame"]), int(skip) if skip is not None else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class RoomSignals:
    def __init__(self, redis: Redis, blocking_redis: Redis, on_signal: OnSignal) -> None:
        self._redis = redis
        self._blocking = blocking_redis
        self._on_signal = on_signal
        self._pubsub: PubSub | None = None
        database = int(redis.connection_pool.connection_kwargs.get("db", 0) or 0)
        self.channel = redis_keys.room_signals(database)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._pubsub = self._blocking.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self.channel)
        self._task = asyncio.create_task(self._run(self._pubsub), name="room-signals")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def publish(self, room: str, frame: str, *, skip_user: int | None = None) -> None:
        payload = json.dumps({"room": room, "frame": frame, "skip": skip_user}, ensure_ascii=False)
        await self._redis.publish(self.channel, payload)

    async def _run(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=None)
            except (RedisError, OSError) as exc:
                log.warning("room signals: %s; resubscribing", exc)
                await asyncio.sleep(RETRY_S)
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.subscribe(self.channel)
                continue
            if message is None or message.get("type") != "message":
                continue
            signal = _decode(message["data"])
            if signal is None:
                log.warning("room signals: dropped a malformed signal")
                continue
            try:
                self._on_signal(*signal)
            except Exception:
                log.exception("room signal delivery failed")
