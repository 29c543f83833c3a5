"""The hub of one app node: it serves each WebSocket's frames and fans room messages out.

Messages reach subscribers only through the room streams (`StreamBus`), on every node
alike; presence and typing travel by pub/sub (`RoomSignals`). The hub knows nothing of
HTTP: the web layer gives it a `Transport`, the authenticated user and a `RoomAccess`
that says whether that user may use a room (it is asked for every frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from chatroom import redis_keys
from chatroom.domain import frames
from chatroom.domain.events import Author, InvalidEvent, Message, MessageEvent, decode_event
from chatroom.domain.frames import CloseCode, ErrorCode, FrameError
from chatroom.domain.stream_ids import ZERO, StreamId
from chatroom.history import History
from chatroom.hub.bus import StreamBus
from chatroom.hub.connection import Connection
from chatroom.hub.limits import ConnectionLimit, SendLimiter
from chatroom.hub.presence import Presence, PresenceBoard, online_users
from chatroom.hub.replies import SEND_WINDOW, Replies
from chatroom.hub.signals import RoomSignals
from chatroom.hub.subscription import RoomRef, Subscription
from chatroom.hub.transport import SharedText, Transport
from chatroom.outages import STORE_ERRORS
from chatroom.settings import Settings
from chatroom.store.history_pages import ArchivedPages
from chatroom.streams.snapshots import Entry
from chatroom.streams.writer import StreamWriter

log = logging.getLogger(__name__)

# Says whether `user` may use room `slug` now: the room, or None (unknown or not allowed).
RoomAccess = Callable[[Author, str], Awaitable[RoomRef | None]]
# Says whether the session (or token) the socket was opened with is still valid.
SignedIn = Callable[[], Awaitable[bool]]

REPLAY_PAGE = 200
# A send or typing frame reuses a yes from the room check for this long; a subscribe asks
# afresh. A removal from a private room clears it at once on every node (`access_lost`),
# and subscriptions to private rooms are checked again at every heartbeat all the same.
ACCESS_CACHE_S = 5.0
STOP_TIMEOUT_S = 5.0


@dataclass
class HubStats:
    """Counters for /metrics."""

    connections: int = 0
    messages_in: int = 0  # sends acknowledged (resends included)
    messages_out: int = 0  # message frames queued to sockets, replays included
    slow_consumers: int = 0  # connections closed for falling behind
    fanout_lag_ms: float = 0.0  # last batch: from the newest entry's id time to its fan-out


class _Client:
    """What the hub keeps for one connection."""

    __slots__ = (
        "access",
        "allowed",
        "connection",
        "replies",
        "signed_in",
        "subscriptions",
        "typed_at",
    )

    def __init__(
        self, connection: Connection, access: RoomAccess, signed_in: SignedIn | None
    ) -> None:
        self.connection = connection
        self.access = access
        self.signed_in = signed_in
        # The replies of a full window fit in the outbound queue with room to spare.
        self.replies = Replies(connection, window=min(SEND_WINDOW, connection.queue_max // 2))
        self.subscriptions: dict[str, Subscription] = {}
        self.allowed: dict[str, tuple[RoomRef, float]] = {}
        self.typed_at: dict[str, float] = {}

    async def room(self, slug: str, *, fresh: bool) -> RoomRef | None:
        now = time.monotonic()
        if not fresh:
            cached = self.allowed.get(slug)
            if cached is not None and cached[1] > now:
                return cached[0]
        room = await self.access(self.connection.user, slug)
        if room is None:
            self.allowed.pop(slug, None)
        else:
            self.allowed[slug] = (room, now + ACCESS_CACHE_S)
        return room


class Hub:
    def __init__(
        self,
        *,
        settings: Settings,
        redis: Redis,
        blocking_redis: Redis,
        writer: StreamWriter,
        history: History,
        archive: ArchivedPages,
        node_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.node_id = node_id or secrets.token_hex(6)
        self.stats = HubStats()
        self._redis = redis
        self._writer = writer
        self._history = history
        self._archive = archive
        expiry_ms = int(settings.presence_expiry_s * 1000)
        self._heartbeat_s = settings.presence_expiry_s / 4
        self.presence = PresenceBoard(redis, expiry_ms)
        self._limit = ConnectionLimit(redis, settings.max_connections_per_user, expiry_ms)
        self._sends = SendLimiter(settings.send_rate_per_s, settings.send_burst)
        self._bus = StreamBus(redis, blocking_redis, self.node_id, self._on_entries)
        self._signals = RoomSignals(redis, blocking_redis, self._on_signal, self._on_access_lost)
        self._clients: dict[str, _Client] = {}
        self._rooms: dict[str, set[Subscription]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._all_gone = asyncio.Event()
        self._all_gone.set()

    # Life cycle.

    async def start(self) -> None:
        await self._bus.start()
        await self._signals.start()
        self._heartbeat = asyncio.create_task(self._beat(), name="hub-heartbeat")

    async def stop(self) -> None:
        """Close every socket with 1001 (reconnect elsewhere), then stop reading Redis."""
        for client in list(self._clients.values()):
            client.connection.close(CloseCode.GOING_AWAY, "the server is restarting")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await self._all_gone.wait()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self._signals.stop()
        await self._bus.stop()

    # One connection.

    async def serve(
        self,
        transport: Transport,
        user: Author,
        access: RoomAccess,
        signed_in: SignedIn | None = None,
    ) -> None:
        """Serve an accepted WebSocket until it ends; `signed_in` is asked at every
        heartbeat, and a socket whose session ended is closed (SIGNED_OUT)."""
        connection = Connection(transport, user, queue_max=self.settings.outbound_queue_max)
        try:
            admitted = await self._limit.admit(user.id, connection.id)
        except STORE_ERRORS as exc:
            log.warning("cannot count connections (Redis): %s", exc)
            await transport.close(CloseCode.TRY_AGAIN_LATER, "the server is unavailable")
            return
        if not admitted:
            limit = self.settings.max_connections_per_user
            await transport.close(CloseCode.TOO_MANY_CONNECTIONS, f"over {limit} connections")
            return
        client = _Client(connection, access, signed_in)
        self._clients[connection.id] = client
        self._all_gone.clear()
        self.stats.connections += 1
        try:
            await connection.run(lambda frame: self._on_frame(client, frame))
        finally:
            if connection.close_code == CloseCode.SLOW_CONSUMER:
                self.stats.slow_consumers += 1
            try:
                await client.replies.settle(within_s=STOP_TIMEOUT_S)
            finally:
                await self._disconnect(client)

    async def _disconnect(self, client: _Client) -> None:
        user = client.connection.user
        try:
            for subscription in list(client.subscriptions.values()):
                await self._unsubscribe(client, subscription)
            with contextlib.suppress(*STORE_ERRORS):
                await self._limit.release(user.id, client.connection.id)
        finally:
            del self._clients[client.connection.id]
            self.stats.connections -= 1
            # The send bucket stays: a reconnect must not buy a fresh burst.
            if not self._clients:
                self._all_gone.set()

    async def _on_frame(self, client: _Client, raw: str | bytes) -> None:
        connection = client.connection
        replies = client.replies
        if frames.frame_too_big(raw, self.settings.frame_max_bytes):
            limit = self.settings.frame_max_bytes
            connection.close(CloseCode.MESSAGE_TOO_BIG, f"a frame is at most {limit} bytes")
            return
        await replies.room_for_one()  # backpressure: a full window stops the reading
        try:
            frame = frames.parse_client_frame(raw, body_max_chars=self.settings.message_max_chars)
        except FrameError as exc:
            replies.answer(exc.as_frame())
            return
        try:
            if isinstance(frame, frames.Send):
                await self._send(client, frame)
                return
            # Any other frame waits for the sends before it: its reply never passes their
            # acks, and a subscribe after a send sees that message.
            await replies.drained()
            if isinstance(frame, frames.Subscribe):
                await self._subscribe(client, frame)
            elif isinstance(frame, frames.Unsubscribe):
                subscription = client.subscriptions.get(frame.room)
                if subscription is not None:
                    await self._unsubscribe(client, subscription)
                connection.offer(frames.unsubscribed(frame.room))
            elif isinstance(frame, frames.Typing):
                await self._typing(client, frame)
            else:
                connection.offer(frames.pong())
        except STORE_ERRORS as exc:
            log.warning("a %s frame failed: %s", type(frame).__name__.lower(), exc)
            client_id = frame.client_id if isinstance(frame, frames.Send) else None
            replies.answer(_unavailable(client_id))

    # Frames.

    async def _send(self, client: _Client, send: frames.Send) -> None:
        """Check the send now and start its append; its reply comes in turn (`Replies`)."""
        replies = client.replies
        user = client.connection.user
        wait_ms = self._sends.retry_after_ms(user.id)
        if wait_ms:
            rate = self.settings.send_rate_per_s
            replies.answer(
                frames.error(
                    ErrorCode.RATE_LIMITED,
                    f"too many messages: at most {rate:g} per second",
                    client_id=send.client_id,
                    retry_after_ms=wait_ms,
                )
            )
            return
        room = await client.room(send.room, fresh=False)
        if room is None:
            replies.answer(
                FrameError(
                    ErrorCode.ROOM_NOT_FOUND,
                    f"there is no room {send.room!r}",
                    client_id=send.client_id,
                ).as_frame()
            )
            return
        # A task's first step queues the append in the stream writer, and tasks start in
        # the order they are created: a sender's messages reach the stream in the order
        # they arrived, while the reader goes on to the next frame.
        replies.follow(asyncio.create_task(self._append(room.slug, user, send)))

    async def _append(self, slug: str, user: Author, send: frames.Send) -> str:
        """Append a send to its room's stream; the reply: its ack, or why it failed."""
        try:
            appended = await self._writer.append(
                MessageEvent(slug, user, send.body, send.client_id)
            )
        except STORE_ERRORS as exc:
            log.warning("a send failed: %s", exc)
            return _unavailable(send.client_id)
        self.stats.messages_in += 1
        return frames.ack(send.client_id, appended.id)

    async def _typing(self, client: _Client, typing: frames.Typing) -> None:
        now = time.monotonic()
        if now - client.typed_at.get(typing.room, -1e9) < frames.TYPING_INTERVAL_S:
            return  # advisory: the one a moment ago still shows
        room = await client.room(typing.room, fresh=False)
        if room is None:
            answer_room_not_found(typing.room, None, client.connection)
            return
        client.typed_at[typing.room] = now
        user = client.connection.user
        await self._signals.publish(room.slug, frames.typing(room.slug, user), skip_user=user.id)

    async def _subscribe(self, client: _Client, subscribe: frames.Subscribe) -> None:
        connection = client.connection
        room = await client.room(subscribe.room, fresh=True)
        if room is None:
            answer_room_not_found(subscribe.room, None, connection)
            return
        old = client.subscriptions.get(room.slug)
        if old is not None:  # subscribing again restarts the sequence, presence stays
            self._drop(client, old)
        subscription = Subscription(connection, room, buffer_max=self.settings.outbound_queue_max)
        # Registered before the stream's last id is read: whatever comes after that id is
        # then in the buffer, so live messages join the replay without a gap.
        client.subscriptions[room.slug] = subscription
        self._rooms.setdefault(room.slug, set()).add(subscription)
        try:
            stream_last = await self._stream_last_id(room.slug)
            await self._bus.watch(room.slug, stream_last or ZERO)
            if old is None:
                entry = Presence(room.slug, connection.user, connection.id)
                if await self.presence.join(entry):
                    await self._signals.publish(
                        room.slug,
                        frames.presence(room.slug, connection.user, "join"),
                        skip_user=connection.user.id,  # their own tabs know
                    )
            online = await online_users(self._redis, room.slug)
            since = subscribe.since
            lost = since is not None and since != ZERO
            if lost and stream_last is not None and since is not None:
                lost = not await self._known(room, since)
            last_id = stream_last if stream_last is not None else await self._newest_id(room)
        except BaseException:
            self._drop(client, subscription)
            raise
        connection.offer(frames.subscribed(room.slug, last_id, online))
        subscription.announced = True
        if since is None or lost:
            if lost:
                connection.offer(frames.resync(room.slug))
            subscription.last_sent = last_id
            subscription.go_live()
            return
        subscription.last_sent = since
        subscription.replay = connection.spawn(
            self._replay(client, subscription), name=f"replay {room.slug}"
        )

    async def _replay(self, client: _Client, subscription: Subscription) -> None:
        connection = client.connection
        room = subscription.room
        try:
            while True:
                page = await self._history.page(
                    room.id, room.slug, after=subscription.last_sent, limit=REPLAY_PAGE
                )
                for message in page.messages:
                    await connection.wait_writable()
                    if connection.closing:
                        return
                    subscription.replayed(message.id, frames.message(message))
                    self.stats.messages_out += 1
                if not page.has_more and subscription.go_live():
                    return
        except STORE_ERRORS as exc:
            log.warning("replay of %s failed: %s", room.slug, exc)
            if client.subscriptions.get(room.slug) is subscription:
                self._drop(client, subscription)
                connection.offer(
                    frames.error(
                        ErrorCode.UNAVAILABLE,
                        f"could not load the missed messages of {room.slug}; subscribe again",
                    )
                )
                connection.offer(frames.unsubscribed(room.slug))
                with contextlib.suppress(*STORE_ERRORS):
                    await self._leave(client, room.slug)

    def _drop(self, client: _Client, subscription: Subscription) -> None:
        """Stop delivering to a subscription (presence is the caller's business)."""
        slug = subscription.room.slug
        if client.subscriptions.get(slug) is subscription:
            del client.subscriptions[slug]
        if subscription.replay is not None and subscription.replay is not asyncio.current_task():
            subscription.replay.cancel()
        members = self._rooms.get(slug)
        if members is not None:
            members.discard(subscription)
            if not members:
                del self._rooms[slug]
                self._bus.unwatch(slug)

    async def _unsubscribe(self, client: _Client, subscription: Subscription) -> None:
        self._drop(client, subscription)
        try:
            await self._leave(client, subscription.room.slug)
        except STORE_ERRORS as exc:  # the heartbeat lapses: the sweep says leave later
            log.warning("presence leave of %s failed: %s", subscription.room.slug, exc)

    async def _leave(self, client: _Client, slug: str) -> None:
        user = client.connection.user
        if await self.presence.leave(Presence(slug, user, client.connection.id)):
            await self._signals.publish(
                slug, frames.presence(slug, user, "leave"), skip_user=user.id
            )

    # Reads.

    async def _stream_last_id(self, slug: str) -> StreamId | None:
        """The stream's last generated id, or None when there is no stream."""
        key = redis_keys.room_stream(slug)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(key)
            pipe.xinfo_stream(key)
            exists, info = await pipe.execute(raise_on_error=False)
        if isinstance(exists, Exception):
            raise exists
        if not exists:
            return None
        if isinstance(info, Exception):
            raise info
        return StreamId.parse(info["last-generated-id"])

    async def _known(self, room: RoomRef, message_id: StreamId) -> bool:
        """Whether a message with this id is in the stream or in SQL."""
        key = redis_keys.room_stream(room.slug)
        if await self._redis.xrange(key, min=str(message_id), max=str(message_id), count=1):
            return True
        found = await self._archive.between(
            room.id, room.slug, message_id.previous(), message_id.next(), 1
        )
        return bool(found)

    async def _newest_id(self, room: RoomRef) -> StreamId:
        """With no stream: the newest archived id, or 0-0 for a room without messages."""
        page = await self._history.page(room.id, room.slug, limit=1)
        return page.messages[-1].id if page.messages else ZERO

    # Fan-out.

    def _on_entries(self, room: str, entries: list[Entry]) -> None:
        subscriptions = self._rooms.get(room)
        if not subscriptions:
            return
        for entry_id, fields in entries:
            try:
                event = decode_event(room, fields)
            except InvalidEvent:
                continue  # the archiver puts it in the dead letters, with the reason
            frame = SharedText(
                frames.message(Message(entry_id, room, event.author, event.body, event.client_id))
            )
            for subscription in subscriptions:
                subscription.deliver(entry_id, frame)
            self.stats.messages_out += len(subscriptions)
        self.stats.fanout_lag_ms = max(0.0, time.time() * 1000 - entries[-1][0].ms)

    def _on_signal(self, room: str, frame: str, skip_user: int | None) -> None:
        for subscription in self._rooms.get(room, ()):
            connection = subscription.connection
            if subscription.announced and connection.user.id != skip_user:
                connection.offer(frame)

    # Access taken away (a member removed from a private room).

    async def access_lost(self, slug: str, user_id: int) -> None:
        """Tell every node that the user may no longer use the room: their subscriptions
        to it end at once, and no cached yes lets one more send through."""
        try:
            await self._signals.publish_access_lost(slug, user_id)
        except STORE_ERRORS as exc:  # the heartbeat's recheck ends them within 5 s
            log.warning("could not announce that user %s left %s: %s", user_id, slug, exc)

    def _on_access_lost(self, slug: str, user_id: int) -> None:
        for client in list(self._clients.values()):
            if client.connection.user.id != user_id:
                continue
            client.allowed.pop(slug, None)
            subscription = client.subscriptions.get(slug)
            if subscription is None:
                continue
            self._drop(client, subscription)  # now: not one more live message
            client.connection.offer(
                frames.error(ErrorCode.FORBIDDEN, f"you are no longer a member of {slug}")
            )
            client.connection.offer(frames.unsubscribed(slug))
            client.connection.spawn(self._unsubscribe(client, subscription), name=f"leave {slug}")

    # Heartbeat: presence and connection counts stay alive, dead nodes' users leave,
    # sessions and private rooms are checked again.

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            self._sends.forget_full()
            try:
                await self._beat_once()
            except STORE_ERRORS as exc:
                log.warning("presence heartbeat failed: %s", exc)

    async def _beat_once(self) -> None:
        clients = list(self._clients.values())
        entries = [
            Presence(slug, c.connection.user, c.connection.id)
            for c in clients
            for slug in c.subscriptions
        ]
        await self.presence.refresh(entries)
        await self._limit.refresh([(c.connection.user.id, c.connection.id) for c in clients])
        for slug in list(self._rooms):
            for user in await self.presence.sweep(slug):
                await self._signals.publish(slug, frames.presence(slug, user, "leave"))
        for client in clients:
            if client.signed_in is not None and not await client.signed_in():
                client.connection.close(CloseCode.SIGNED_OUT, "the session has ended")
                continue
            for subscription in list(client.subscriptions.values()):
                if (
                    subscription.room.private
                    and await client.room(subscription.room.slug, fresh=True) is None
                ):
                    slug = subscription.room.slug
                    await self._unsubscribe(client, subscription)
                    client.connection.offer(
                        frames.error(ErrorCode.FORBIDDEN, f"you are no longer a member of {slug}")
                    )
                    client.connection.offer(frames.unsubscribed(slug))


def _unavailable(client_id: str | None) -> str:
    return frames.error(
        ErrorCode.UNAVAILABLE,
        "the server cannot reach its storage right now; try again",
        client_id=client_id,
    )


def answer_room_not_found(slug: str, client_id: str | None, connection: Connection) -> None:
    """Answer with room_not_found: for a private room the same as for none at all."""
    connection.offer(
        FrameError(
            ErrorCode.ROOM_NOT_FOUND, f"there is no room {slug!r}", client_id=client_id
        ).as_frame()
    )
