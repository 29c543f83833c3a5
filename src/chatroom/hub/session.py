"""One WebSocket's protocol: its frames in, its replies out, its subscriptions.

A `Session` serves the frames of one connection (send, subscribe with replay,
unsubscribe, typing, ping) and keeps what belongs to that connection alone: its room
subscriptions, the rooms it was recently allowed into, and when it last said it was
typing. What all connections of the node share (the registry of room subscribers and the
stream reads behind it, presence, signals, the send limits, the counters) it reaches
through `Node`, which the hub is.

Inside the hub a `slug` is a room's name as the client sends it, and a `room` is the
`RoomRef` the web layer's authorization found for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Hashable
from functools import partial

from chatroom.domain import frames, moderation
from chatroom.domain.events import MessageEvent, StreamEvent
from chatroom.domain.frames import CloseCode, ErrorCode, FrameError
from chatroom.domain.rules import SUBSCRIBE_FRAME_COST
from chatroom.domain.stream_ids import ZERO
from chatroom.hub.change_checks import checked_event
from chatroom.hub.connection import Connection
from chatroom.hub.limits import frame_bucket, wait_ms
from chatroom.hub.node import Node, RoomAccess
from chatroom.hub.presence import Presence
from chatroom.hub.replies import SEND_WINDOW, Replies
from chatroom.hub.restrictions import refusal
from chatroom.hub.subscription import RoomRef, Subscription
from chatroom.outages import STORE_ERRORS
from chatroom.streams.writer import Appended, HeldBack, OutcomeUnknown

log = logging.getLogger(__name__)

REPLAY_PAGE = 200
# A send or typing frame reuses a yes from the room check for this long; a subscribe asks
# afresh. A removal from a private room clears it at once on every node (`access_lost`),
# and subscriptions to private rooms are checked again at every heartbeat all the same.
ACCESS_CACHE_S = 5.0


class Session:
    """One connection's protocol state: what the hub keeps for one socket."""

    __slots__ = (
        "_access",
        "_allowed",
        "_frames",
        "_node",
        "_subscriptions",
        "_typed_at",
        "connection",
        "replies",
        "sign_in",
    )

    def __init__(
        self, node: Node, connection: Connection, access: RoomAccess, sign_in: Hashable | None
    ) -> None:
        self._node = node
        self.connection = connection
        self._access = access
        self.sign_in = sign_in  # the session or token the socket was opened with
        # The replies of a full window fit in the outbound queue with room to spare.
        self.replies = Replies(connection, window=min(SEND_WINDOW, connection.queue_max // 2))
        self._subscriptions: dict[str, Subscription] = {}
        self._allowed: dict[str, tuple[RoomRef, float]] = {}
        self._typed_at: dict[str, float] = {}
        settings = node.settings
        self._frames = frame_bucket(
            settings.frame_rate_per_s, settings.frame_burst, time.monotonic()
        )

    async def _allowed_room(self, slug: str, *, fresh: bool) -> RoomRef | None:
        """The room if this user may use it; `fresh=False` takes a recent yes as it is."""
        now = time.monotonic()
        if not fresh:
            cached = self._allowed.get(slug)
            if cached is not None and cached[1] > now:
                return cached[0]
        room = await self._access(self.connection.user, slug)
        if room is None:
            self._allowed.pop(slug, None)
        else:
            self._allowed[slug] = (room, now + ACCESS_CACHE_S)
        return room

    # Frames in.

    async def on_frame(self, raw: str | bytes) -> None:
        """Serve one frame from the client (the connection's reader awaits it)."""
        settings = self._node.settings
        connection = self.connection
        replies = self.replies
        if frames.frame_too_big(raw, settings.frame_max_bytes):
            limit = settings.frame_max_bytes
            connection.close(CloseCode.MESSAGE_TOO_BIG, f"a frame is at most {limit} bytes")
            return
        await replies.room_for_one()  # backpressure: a full window stops the reading
        try:
            frame = frames.parse_client_frame(raw, body_max_chars=settings.message_max_chars)
        except FrameError as exc:
            if not self._over_frame_rate(1.0, exc.client_id, None):
                replies.answer(exc.as_frame())
            return
        cost = SUBSCRIBE_FRAME_COST if isinstance(frame, frames.Subscribe) else 1.0
        room: str | None = getattr(frame, "room", None)
        if self._over_frame_rate(cost, getattr(frame, "client_id", None), room):
            return
        try:
            if isinstance(frame, frames.Send | frames.Change):
                await self._send(frame)
                return
            # Any other frame waits for the sends before it: its reply never passes their
            # acks, and a subscribe after a send sees that message.
            await replies.drained()
            if isinstance(frame, frames.Subscribe):
                await self._subscribe(frame)
            elif isinstance(frame, frames.Unsubscribe):
                subscription = self._subscriptions.get(frame.room)
                if subscription is not None:
                    await self._unsubscribe(subscription)
                connection.offer(frames.unsubscribed(frame.room))
            elif isinstance(frame, frames.Typing):
                await self._typing(frame)
            elif isinstance(frame, frames.Read):
                await self._read(frame)
            else:
                connection.offer(frames.pong())
        except STORE_ERRORS as exc:
            log.warning("a %s frame failed: %s", type(frame).__name__.lower(), exc)
            client_id = frame.client_id if isinstance(frame, frames.Send | frames.Change) else None
            replies.answer(_unavailable(client_id))

    def _over_frame_rate(self, cost: float, client_id: str | None, room: str | None) -> bool:
        """Spend the frame's tokens; when there are too few, answer `rate_limited`."""
        wait = self._frames.take(time.monotonic(), cost)
        if wait == 0.0:
            return False
        rate = self._node.settings.frame_rate_per_s
        self.replies.answer(
            frames.error(
                ErrorCode.RATE_LIMITED,
                f"too many frames: at most {rate:g} per second",
                client_id=client_id,
                retry_after_ms=wait_ms(wait),
                room=room,
            )
        )
        return True

    async def _send(self, send: frames.Send | frames.Change) -> None:
        """Check the send (or change) now and start its append; its reply comes in turn
        (`Replies`). A change or a reply first looks its target up (hub/change_checks.py),
        in the reader: the frames after it wait, so that a socket's changes reach the stream
        in the order they came. A plain send reads nothing more."""
        replies = self.replies
        user = self.connection.user
        wait_ms = self._node.sends.retry_after_ms(user.id)
        if wait_ms:
            rate = self._node.settings.send_rate_per_s
            replies.answer(
                frames.error(
                    ErrorCode.RATE_LIMITED,
                    f"too many messages: at most {rate:g} per second",
                    client_id=send.client_id,
                    retry_after_ms=wait_ms,
                )
            )
            return
        room = await self._allowed_room(send.room, fresh=False)
        if room is None:
            replies.answer(_room_not_found(send.room, send.client_id))
            return
        refused = refusal(
            self._node.restrictions, room.id, room.slug, user.id, client_id=send.client_id
        )
        if refused is not None:  # muted or removed: a dict lookup, no SQL
            replies.answer(refused)
            return
        event: StreamEvent | str
        if isinstance(send, frames.Send) and send.reply_to is None:
            event = MessageEvent(room.slug, user, send.body, send.client_id)
        else:
            event = await checked_event(self._node.history, room, user, send)
            if isinstance(event, str):
                replies.answer(event)
                return
        # Queued in the stream writer now, in the order the frames arrived (the writer
        # sends its queue in that order), while the reader goes on to the next frame; the
        # reply is made when the append is done, and offered in turn. No task per send.
        appended = self._node.writer.submit(event, order=self.connection.id)
        replies.follow(appended, partial(self._reply, event))

    def _reply(self, event: StreamEvent, appended: asyncio.Future[Appended]) -> str:
        """A done append's reply: its ack, or why it failed."""
        failure = appended.exception()
        if failure is None:
            self._node.stats.messages_in += 1
            return frames.ack(event.client_id, appended.result().id)
        if isinstance(failure, OutcomeUnknown):  # later sends of this socket are held back
            log.warning("a send's outcome is unknown: %s", failure)
            return frames.error(
                ErrorCode.UNKNOWN_OUTCOME,
                "the message may or may not have been stored; resend it with the same client_id",
                client_id=event.client_id,
            )
        if isinstance(failure, HeldBack):  # not sent: an earlier send of this socket is unknown
            return _unavailable(event.client_id, str(failure))
        if isinstance(failure, STORE_ERRORS):  # not stored
            log.warning("a send failed: %s", failure)
            return _unavailable(event.client_id)
        raise failure

    async def _typing(self, typing: frames.Typing) -> None:
        now = time.monotonic()
        gate = self._node.typing
        if now - self._typed_at.get(typing.room, -1e9) < gate.interval_s:
            return  # advisory: the one a moment ago still shows
        room = await self._allowed_room(typing.room, fresh=False)
        if room is None:
            self.connection.offer(_room_not_found(typing.room))
            return
        self._typed_at[typing.room] = now
        user = self.connection.user
        refused = refusal(self._node.restrictions, room.id, room.slug, user.id)
        if refused is not None:
            self.connection.offer(refused)
            return
        if not await gate.claim(room.slug, user.id):
            return  # another socket of the user said it this interval
        await self._node.signals.publish(
            room.slug, frames.typing(room.slug, user), skip_user=user.id
        )

    async def _read(self, read: frames.Read) -> None:
        room = await self._allowed_room(read.room, fresh=False)
        if room is None:
            self.connection.offer(_room_not_found(read.room))
            return
        await self._node.read(self.connection.user, room, read.id)

    async def _subscribe(self, subscribe: frames.Subscribe) -> None:
        node = self._node
        connection = self.connection
        subscriptions = self._subscriptions
        cap = node.settings.max_subscriptions_per_connection
        if len(subscriptions) >= cap and subscribe.room not in subscriptions:
            connection.offer(
                frames.error(
                    ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                    f"a connection may be subscribed to at most {cap} rooms",
                    room=subscribe.room,
                )
            )
            return
        room = await self._allowed_room(subscribe.room, fresh=True)
        if room is None:
            connection.offer(_room_not_found(subscribe.room))
            return
        refused = refusal(node.restrictions, room.id, room.slug, connection.user.id, writing=False)
        if refused is not None:
            connection.offer(refused)
            return
        slug = room.slug
        old = self._subscriptions.get(slug)
        if old is not None:  # subscribing again restarts the sequence, presence stays
            self._drop(old)
        subscription = Subscription(connection, room, buffer_max=node.settings.outbound_queue_max)
        # Registered before the stream's last id is read: whatever comes after that id is
        # then in the buffer, so live messages join the replay without a gap.
        self._subscriptions[slug] = subscription
        node.add_subscriber(subscription)
        try:
            position = await node.history.position(slug)
            stream_last = position.last_generated if position.exists else None
            await node.watch(slug, position)
            if old is None:
                user = connection.user
                if await node.presence.join(Presence(slug, user, connection.id)):
                    await node.signals.publish(
                        slug,
                        frames.presence(slug, user, "join"),
                        skip_user=user.id,  # their own tabs know
                    )
            online = await node.presence.online(slug)
            since = subscribe.since
            lost = since is not None and since not in (ZERO, stream_last)
            if lost and stream_last is not None and since is not None:
                # An id Redis lost (streams/epochs.py), or one neither Redis nor SQL knows.
                in_lost_range = position.epoch is not None and position.epoch.lost(since)
                lost = in_lost_range or not await node.history.contains(room.id, slug, since)
            if stream_last is None:
                last_id = await node.history.newest_id(room.id, slug)
            else:
                last_id = stream_last
        except BaseException as exc:
            self._drop(subscription)
            if old is None and isinstance(exc, Exception):
                # The join may have gone through before the step that failed: nothing
                # would keep or end that presence now (leaving twice is harmless).
                await self._leave(slug)
            raise
        connection.offer(frames.subscribed(slug, last_id, online))
        subscription.announced = True
        muted_until = node.restrictions.muted_until(room.id, connection.user.id)
        if muted_until is not None:
            connection.offer(moderation.muted(slug, muted_until))
        if since is None or lost:
            if lost:
                connection.offer(frames.resync(slug))
            subscription.last_sent = last_id
            subscription.go_live()
            return
        subscription.last_sent = since
        subscription.replay = connection.spawn(self._replay(subscription), name=f"replay {slug}")

    async def _replay(self, subscription: Subscription) -> None:
        node = self._node
        connection = self.connection
        room = subscription.room
        try:
            while True:
                page = await node.history.page(
                    room.id,
                    room.slug,
                    after=subscription.last_sent,
                    limit=REPLAY_PAGE,
                    changes=True,
                )
                for item in page.items():
                    await connection.wait_writable()
                    if connection.closing:
                        return
                    subscription.replayed(item.id, frames.item(item))
                    node.stats.messages_out += 1
                if not page.has_more and subscription.go_live():
                    return
        except STORE_ERRORS as exc:
            log.warning("replay of %s failed: %s", room.slug, exc)
            self._end_subscription(
                subscription,
                ErrorCode.UNAVAILABLE,
                f"could not load the missed messages of {room.slug}; subscribe again",
            )

    # Subscriptions ending.

    def _end_subscription(
        self, subscription: Subscription, code: str, why: str, *, told: str | None = None
    ) -> None:
        """End a subscription the client did not ask to end: not one more live message,
        the client is told (an `error` with `code` and `why`, or `told`, then
        `unsubscribed`), and its presence in the room leaves. A subscription already
        ended is left alone."""
        slug = subscription.room.slug
        if self._subscriptions.get(slug) is not subscription:
            return
        self._drop(subscription)
        self.connection.offer(told or frames.error(code, why, room=slug))
        self.connection.offer(frames.unsubscribed(slug))
        self.connection.spawn(self._leave(slug), name=f"leave {slug}")

    def access_lost(self, slug: str) -> None:
        """The user may no longer use the room: no cached yes, and its subscription ends."""
        self._allowed.pop(slug, None)
        subscription = self._subscriptions.get(slug)
        if subscription is not None:
            self._end_subscription(subscription, ErrorCode.FORBIDDEN, _not_a_member(slug))

    def removed(self, slug: str, told: str) -> None:
        """Removed from the room by a moderator: as `access_lost`, told with `told`."""
        self._allowed.pop(slug, None)
        subscription = self._subscriptions.get(slug)
        if subscription is not None:
            self._end_subscription(subscription, moderation.REMOVED, "", told=told)

    async def recheck(
        self,
        valid_sign_ins: Collection[Hashable],
        lost_memberships: Collection[tuple[int, int]] | None = None,
    ) -> None:
        """The heartbeat's check: a socket whose session ended closes (SIGNED_OUT), and a
        private room the user may no longer use ends its subscription. `lost_memberships`:
        the (room id, user id) pairs of private-room subscriptions the heartbeat asked
        about and found gone (None: ask the room access for each subscription)."""
        if not await self.recheck_sign_in(valid_sign_ins):
            return
        user_id = self.connection.user.id
        for subscription in list(self._subscriptions.values()):
            room = subscription.room
            if not room.private:
                continue
            if lost_memberships is not None:
                allowed = (room.id, user_id) not in lost_memberships
            else:
                allowed = await self._allowed_room(room.slug, fresh=True) is not None
            if not allowed:
                self._end_subscription(subscription, ErrorCode.FORBIDDEN, _not_a_member(room.slug))

    def private_memberships(self) -> list[tuple[int, int]]:
        """(room id, user id) of each private room subscribed to (for the heartbeat)."""
        user_id = self.connection.user.id
        return [(s.room.id, user_id) for s in self._subscriptions.values() if s.room.private]

    async def recheck_sign_in(self, valid_sign_ins: Collection[Hashable] | None = None) -> bool:
        """Close the socket (SIGNED_OUT) if its session or token has ended; False then.
        `valid_sign_ins`: what the heartbeat found valid for all sockets (None: ask now)."""
        sign_in = self.sign_in
        if sign_in is None:
            return True
        if valid_sign_ins is None:
            valid_sign_ins = await self._node.valid_sign_ins([sign_in])
        if sign_in not in valid_sign_ins:
            self.connection.close(CloseCode.SIGNED_OUT, "the session has ended")
            return False
        return True

    async def _unsubscribe(self, subscription: Subscription) -> None:
        """Stop the subscription, then leave the room's presence."""
        self._drop(subscription)
        await self._leave(subscription.room.slug)

    async def unsubscribe_all(self) -> None:
        for subscription in list(self._subscriptions.values()):
            await self._unsubscribe(subscription)

    def presences(self) -> list[Presence]:
        """This connection in each room it is subscribed to (for the heartbeat)."""
        connection = self.connection
        return [Presence(slug, connection.user, connection.id) for slug in self._subscriptions]

    def _drop(self, subscription: Subscription) -> None:
        """Stop delivering to a subscription (presence is the caller's business)."""
        slug = subscription.room.slug
        if self._subscriptions.get(slug) is subscription:
            del self._subscriptions[slug]
        if subscription.replay is not None and subscription.replay is not asyncio.current_task():
            subscription.replay.cancel()
        self._node.remove_subscriber(subscription)

    async def _leave(self, slug: str) -> None:
        """Leave the room's presence; others hear of it when it was the user's last tab."""
        user = self.connection.user
        try:
            if await self._node.presence.leave(Presence(slug, user, self.connection.id)):
                await self._node.signals.publish(
                    slug, frames.presence(slug, user, "leave"), skip_user=user.id
                )
        except STORE_ERRORS as exc:  # the heartbeat lapses: the sweep says leave later
            log.warning("presence leave of %s failed: %s", slug, exc)


def _unavailable(
    client_id: str | None, why: str = "the server cannot reach its storage right now; try again"
) -> str:
    return frames.error(ErrorCode.UNAVAILABLE, why, client_id=client_id)


def _room_not_found(slug: str, client_id: str | None = None) -> str:
    """room_not_found: for a private room the same as for none at all."""
    return FrameError(
        ErrorCode.ROOM_NOT_FOUND, f"there is no room {slug!r}", client_id=client_id
    ).as_frame()


def _not_a_member(slug: str) -> str:
    return f"you are no longer a member of {slug}"
