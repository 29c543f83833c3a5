"""Ephemeral room signals between app nodes, over Redis pub/sub.

Six kinds: a frame for a room's subscribers (presence, typing); a frame for every socket
of one user, or of everyone (their read mark moved, their rooms changed: added, removed,
joined, left, a new public room); "this user lost
access to this room" (a member removed from a private room), on which every node ends
that user's subscription at once; and "sessions of this user ended" (logout, logout
everywhere, a password change), on which every node checks that user's sockets at once
and closes those whose session is gone; a user muted in or removed from a room (every node
updates its `RestrictionBoard` and ends a removed user's subscriptions); and a user banned,
whose sockets every node closes. Frames are never stored: a node that misses one
(a reconnect to Redis) loses nothing that matters, since the online list is read from
Redis with every `subscribed`, and a lost access or an ended session is found by the
heartbeat's recheck anyway.
Every node, the sender's included, acts on a signal when it comes back from the channel:
one path.

The subscription is watched: after `PING_EVERY_S` of silence the node PINGs on the
pub/sub connection, and a connection that answers nothing within `READ_HANG_S` (half-open
after a failover, a NAT timeout, a paused VM) is dropped and the channel subscribed anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from chatroom import redis_keys
from chatroom.domain.moderation import Restriction
from chatroom.outages import Outage, first_line
from chatroom.redis_client import READ_HANG_S
from chatroom.redis_cluster import is_cluster, node_client, refresh_slots

log = logging.getLogger(__name__)

RETRY_S = 0.5
PING_EVERY_S = 5.0
_PING = "chatroom-signals"  # told apart from redis-py's own health check PING

# The room's slug, the frame's JSON text, a user id whose own connections skip it (or None).
OnSignal = Callable[[str, str, int | None], None]
# The room's slug, the user who may no longer use it.
OnAccessLost = Callable[[str, int], None]
# The user some of whose sessions ended.
OnSignedOut = Callable[[int], None]
# The user whose sockets get the frame (None: every socket), the frame's JSON text.
OnUserFrame = Callable[[int | None, str], None]
# A restriction in a room, changed (an `until_ms` in the past: lifted).
OnRestricted = Callable[[Restriction], None]
# The user banned from the site, and why their sockets close.
OnBanned = Callable[[int, str], None]


@dataclass(frozen=True, slots=True)
class RoomFrame:
    slug: str
    frame: str
    skip_user: int | None


@dataclass(frozen=True, slots=True)
class AccessLost:
    slug: str
    user_id: int


@dataclass(frozen=True, slots=True)
class SignedOut:
    user_id: int


@dataclass(frozen=True, slots=True)
class UserFrame:
    user_id: int | None  # None: every connected user
    frame: str


@dataclass(frozen=True, slots=True)
class Banned:
    user_id: int
    reason: str


class _Silent(Exception):
    """The pub/sub connection answered nothing, not even a PING."""


Signal = RoomFrame | AccessLost | SignedOut | UserFrame | Restriction | Banned


def decode_signal(data: Any) -> Signal | None:
    try:
        obj = json.loads(data)
        if "restricted" in obj:
            return Restriction.from_json(obj["restricted"])
        if "banned" in obj:
            return Banned(int(obj["banned"]), str(obj["reason"]))
        if "to_user" in obj:
            to = obj["to_user"]
            return UserFrame(int(to) if to is not None else None, str(obj["frame"]))
        if "signed_out" in obj:
            return SignedOut(int(obj["signed_out"]))
        if "lost" in obj:
            return AccessLost(str(obj["room"]), int(obj["lost"]))
        skip = obj.get("skip")
        return RoomFrame(
            str(obj["room"]), str(obj["frame"]), int(skip) if skip is not None else None
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _ignore_access_lost(_slug: str, _user_id: int) -> None:
    return None


def _ignore_signed_out(_user_id: int) -> None:
    return None


def _ignore_user_frame(_user_id: int | None, _frame: str) -> None:
    return None


def _ignore_restricted(_restriction: Restriction) -> None:
    return None


def _ignore_banned(_user_id: int, _reason: str) -> None:
    return None


class RoomSignals:
    def __init__(
        self,
        redis: Redis,
        blocking_redis: Redis,
        on_signal: OnSignal,
        on_access_lost: OnAccessLost = _ignore_access_lost,
        on_signed_out: OnSignedOut = _ignore_signed_out,
        on_user_frame: OnUserFrame = _ignore_user_frame,
        on_restricted: OnRestricted = _ignore_restricted,
        on_banned: OnBanned = _ignore_banned,
        *,
        ping_every_s: float = PING_EVERY_S,
        hang_s: float = READ_HANG_S,
    ) -> None:
        self._redis = redis
        self._blocking = blocking_redis
        self._on_signal = on_signal
        self._on_access_lost = on_access_lost
        self._on_signed_out = on_signed_out
        self._on_user_frame = on_user_frame
        self._on_restricted = on_restricted
        self._on_banned = on_banned
        self._ping_every_s = ping_every_s
        self._hang_s = hang_s
        self._pubsub: PubSub | None = None
        # A cluster: sharded pub/sub (SPUBLISH/SSUBSCRIBE) on the master of the channel's
        # slot, found anew at every subscribe, so a failover moves it (redis_cluster.py).
        self._sharded = is_cluster(redis)
        self._node_client: Redis | None = None
        database = 0
        if not self._sharded:
            database = int(redis.connection_pool.connection_kwargs.get("db", 0) or 0)
        self.channel = redis_keys.room_signals(database)
        self._link = Outage(
            "Redis (listening to the room signals)", "subscribing again until it works", log
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe (confirmed by Redis: a signal published after this is heard). If
        Redis does not answer (it is restarting), the node starts all the same and keeps
        trying, as after any later failure: what a missed signal would have told its
        sockets, the heartbeat's checks tell them within a beat."""
        try:
            self._pubsub = await self._subscribe()
        except (RedisError, OSError, TimeoutError) as exc:
            self._link.failed(first_line(exc))
        self._task = asyncio.create_task(self._run(), name="room-signals")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()

    async def _publish(self, payload: str) -> None:
        if self._sharded:
            await self._redis.spublish(self.channel, payload)
        else:
            await self._redis.publish(self.channel, payload)

    async def publish(self, slug: str, frame: str, *, skip_user: int | None = None) -> None:
        payload = json.dumps({"room": slug, "frame": frame, "skip": skip_user}, ensure_ascii=False)
        await self._publish(payload)

    async def publish_access_lost(self, slug: str, user_id: int) -> None:
        await self._publish(json.dumps({"room": slug, "lost": user_id}))

    async def publish_to_user(self, user_id: int | None, frame: str) -> None:
        """`frame` to every socket of the user (None: of everyone), on every node."""
        payload = json.dumps({"to_user": user_id, "frame": frame}, ensure_ascii=False)
        await self._publish(payload)

    async def publish_signed_out(self, user_id: int) -> None:
        await self._publish(json.dumps({"signed_out": user_id}))

    async def publish_restricted(self, restriction: Restriction) -> None:
        payload = json.dumps({"restricted": restriction.as_json()}, ensure_ascii=False)
        await self._publish(payload)

    async def publish_banned(self, user_id: int, reason: str) -> None:
        payload = json.dumps({"banned": user_id, "reason": reason}, ensure_ascii=False)
        await self._publish(payload)

    async def _subscribe(self) -> PubSub:
        pubsub = await self._sharded_pubsub() if self._sharded else self._blocking.pubsub()
        confirm = "ssubscribe" if self._sharded else "subscribe"
        try:
            async with asyncio.timeout(self._hang_s):
                if self._sharded:
                    await pubsub.ssubscribe(self.channel)
                else:
                    await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=self._hang_s)
                    if message is not None and message.get("type") == confirm:
                        return pubsub
        except BaseException:
            await self._drop(pubsub)
            raise

    async def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await self._drop(pubsub)

    async def _sharded_pubsub(self) -> PubSub:
        """A pub/sub connection to the master that owns the channel's slot now."""
        async with asyncio.timeout(self._hang_s):
            await refresh_slots(self._redis)
            self._node_client = await node_client(self._redis, self.channel, socket_timeout=None)
        return self._node_client.pubsub()

    async def _drop(self, pubsub: PubSub) -> None:
        """Close the pub/sub connection: a hung one is never handed back to be reused."""
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(self._hang_s):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                client, self._node_client = self._node_client, None
                if client is not None:
                    await client.aclose()

    async def _run(self) -> None:
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = await self._subscribe()
                    self._link.recovered()
                await self._listen(self._pubsub)
            except (RedisError, OSError, TimeoutError, _Silent) as exc:
                self._link.failed(first_line(exc))
                await self._close()
                await asyncio.sleep(RETRY_S)

    async def _listen(self, pubsub: PubSub) -> None:
        """Deliver signals until the connection fails or falls silent (raises)."""
        loop = asyncio.get_running_loop()
        heard = loop.time()  # when the connection last gave anything, a pong included
        pinged: float | None = None
        wait_s = min(self._ping_every_s, self._hang_s)
        while True:
            # get_message returns None after `wait_s`; the bound is for a read that hangs
            # regardless (a reconnect's handshake has no timeout on this client).
            message = await asyncio.wait_for(
                pubsub.get_message(timeout=wait_s), wait_s + self._hang_s
            )
            now = loop.time()
            if message is None:
                if pinged is not None:
                    if now - pinged > self._hang_s:
                        raise _Silent(f"no answer to PING within {self._hang_s:g} s")
                elif now - heard >= self._ping_every_s:
                    async with asyncio.timeout(self._hang_s):
                        await pubsub.ping(_PING)
                    pinged = now
                continue
            heard, pinged = now, None
            self._link.recovered()
            if message.get("type") in ("message", "smessage"):
                self._deliver(message["data"])

    def _deliver(self, data: Any) -> None:
        signal = decode_signal(data)
        if signal is None:
            log.warning("room signals: dropped a malformed signal")
            return
        try:
            if isinstance(signal, AccessLost):
                self._on_access_lost(signal.slug, signal.user_id)
            elif isinstance(signal, SignedOut):
                self._on_signed_out(signal.user_id)
            elif isinstance(signal, UserFrame):
                self._on_user_frame(signal.user_id, signal.frame)
            elif isinstance(signal, Restriction):
                self._on_restricted(signal)
            elif isinstance(signal, Banned):
                self._on_banned(signal.user_id, signal.reason)
            else:
                self._on_signal(signal.slug, signal.frame, signal.skip_user)
        except Exception:
            log.exception("room signal delivery failed")
