"""The hub of one app node: its connections, who is subscribed to which room, and the
fan-out of the rooms' messages and signals to them.

Messages reach subscribers only through the room streams (`StreamBus`, one reader per
group of rooms: `GroupedStreamBus`), on every node alike (and what the stream lost
before this node read it, from SQL, or a `resync`); presence and typing travel by
pub/sub (`RoomSignals`). Each connection's frames
are served by its `Session` (hub/session.py); the hub keeps what the node shares: the
sessions by connection, the subscriptions by room, the heartbeat, start and stop. The hub
knows nothing of HTTP: the web layer gives it a `Transport`, the authenticated user and a
`RoomAccess` that says whether that user may use a room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Collection, Hashable, Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from chatroom.domain import frames, moderation
from chatroom.domain.events import Author, InvalidEvent, RoomItem, decode_event
from chatroom.domain.frames import CloseCode
from chatroom.domain.stream_ids import StreamId
from chatroom.history import History
from chatroom.hub.bus_groups import GroupedStreamBus
from chatroom.hub.connection import Connection
from chatroom.hub.limits import ConnectionLimit, SendLimiter
from chatroom.hub.node import MembershipCheck, RoomAccess, SignInCheck
from chatroom.hub.presence import PresenceBoard
from chatroom.hub.restrictions import LoadRestrictions, RestrictionBoard
from chatroom.hub.restrictions import now_ms as restricted_now_ms
from chatroom.hub.session import Session
from chatroom.hub.signals import RoomSignals
from chatroom.hub.subscription import RoomRef, Subscription
from chatroom.hub.transport import SharedRun, Transport, shared_runs
from chatroom.hub.typing import TypingGate
from chatroom.outages import STORE_ERRORS
from chatroom.rooms.read_marks import ReadMarks
from chatroom.settings import Settings
from chatroom.streams.entries import Entry
from chatroom.streams.epochs import Standing
from chatroom.streams.writer import StreamWriter

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0


@dataclass
class HubStats:
    """Counters for /metrics."""

    connections: int = 0
    messages_in: int = 0  # sends acknowledged (resends included)
    messages_out: int = 0  # message frames queued to sockets, replays included
    slow_consumers: int = 0  # connections closed for falling behind
    missed_delivered: int = 0  # messages trimmed before the node read them, sent from SQL
    resyncs: int = 0  # `resync` frames: a gap this node could not fill, or a Redis loss
    fanout_lag_ms: float = 0.0  # last batch: from the newest entry's id time to its fan-out


class Hub:
    """The node's registry and fan-out; the `Node` its sessions use."""

    def __init__(
        self,
        *,
        settings: Settings,
        redis: Redis,
        blocking_redis: Redis,
        writer: StreamWriter,
        history: History,
        read_marks: ReadMarks,
        restrictions: LoadRestrictions | None = None,
        sign_in_check: SignInCheck | None = None,
        membership_check: MembershipCheck | None = None,
    ) -> None:
        self.settings = settings
        self._sign_in_check = sign_in_check
        self._membership_check = membership_check
        self.read_marks = read_marks
        self.stats = HubStats()
        self.writer = writer
        self.history = history
        expiry_ms = int(settings.presence_expiry_s * 1000)
        self._heartbeat_s = settings.presence_expiry_s / 4
        self.presence = PresenceBoard(redis, expiry_ms)
        self.sends = SendLimiter(settings.send_rate_per_s, settings.send_burst)
        self.typing = TypingGate(redis, settings.typing_interval_s)
        self.restrictions = RestrictionBoard(restrictions)
        self.signals = RoomSignals(
            redis,
            blocking_redis,
            self._on_signal,
            self._on_access_lost,
            self._on_signed_out,
            self._on_user_frame,
            self._on_restricted,
            self._on_banned,
        )
        self._limit = ConnectionLimit(redis, settings.max_connections_per_user, expiry_ms)
        # Names this node's wake-up stream; a socket's upgrade answer shows it (X-Chatroom-Node).
        self.node_id = secrets.token_hex(6)
        # One stream reader per group of rooms (hub/bus_groups.py).
        self._bus = GroupedStreamBus(redis, blocking_redis, self.node_id, self, history.epochs)
        self._sessions: dict[str, Session] = {}  # by connection id
        self._subscribers_by_slug: dict[str, set[Subscription]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._all_gone = asyncio.Event()
        self._all_gone.set()

    # Life cycle.

    async def start(self) -> None:
        await self._bus.start()
        await self.signals.start()  # before the load: no change falls between the two
        try:
            await self.restrictions.reload()
        except STORE_ERRORS as exc:  # the heartbeat reads them again
            log.warning("cannot read the room restrictions: %s", exc)
        await self.read_marks.start()
        self._heartbeat = asyncio.create_task(self._beat(), name="hub-heartbeat")
        log.info("node %s started", self.node_id)

    async def stop(self) -> None:
        """Close every socket with 1001 (reconnect elsewhere), then stop reading Redis."""
        for session in list(self._sessions.values()):
            session.connection.close(CloseCode.GOING_AWAY, "the server is restarting")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await self._all_gone.wait()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self.read_marks.stop()
        await self.signals.stop()
        await self._bus.stop()

    # One connection.

    async def serve(
        self,
        transport: Transport,
        user: Author,
        access: RoomAccess,
        sign_in: Hashable | None = None,
    ) -> None:
        """Serve an accepted WebSocket until it ends; its `sign_in` (session or token) is
        checked at every heartbeat, and a socket whose sign-in ended is closed (SIGNED_OUT)."""
        connection = Connection(transport, user, queue_max=self.settings.outbound_queue_max)
        session = Session(self, connection, access, sign_in)
        # Known before the count's round trip: what is sent to this user once the upgrade
        # was answered (a room event, a read mark, a mute, a sign-out) reaches it too.
        self._register(session)
        try:
            admitted = await self._limit.admit(user.id, connection.id)
        except STORE_ERRORS as exc:
            log.warning("cannot count connections (Redis): %s", exc)
            self._unregister(session)
            await transport.close(CloseCode.TRY_AGAIN_LATER, "the server is unavailable")
            return
        if not admitted:
            self._unregister(session)
            limit = self.settings.max_connections_per_user
            await transport.close(CloseCode.TOO_MANY_CONNECTIONS, f"over {limit} connections")
            return
        self.stats.connections += 1
        try:
            await connection.run(session.on_frame)
        finally:
            if connection.close_code == CloseCode.SLOW_CONSUMER:
                self.stats.slow_consumers += 1
            try:
                await session.replies.settle(within_s=STOP_TIMEOUT_S)
            finally:
                await self._disconnect(session)

    async def _disconnect(self, session: Session) -> None:
        connection = session.connection
        try:
            await session.unsubscribe_all()
            with contextlib.suppress(*STORE_ERRORS):
                await self._limit.release(connection.user.id, connection.id)
        finally:
            self._unregister(session)
            self.writer.forget(connection.id)  # nothing of it is held back any more
            self.stats.connections -= 1
            # The send bucket stays: a reconnect must not buy a fresh burst.

    def _register(self, session: Session) -> None:
        self._sessions[session.connection.id] = session
        self._all_gone.clear()

    def _unregister(self, session: Session) -> None:
        del self._sessions[session.connection.id]
        if not self._sessions:
            self._all_gone.set()

    # The room subscriptions of every session (the `Node` side of a session).

    def add_subscriber(self, subscription: Subscription) -> None:
        self._subscribers_by_slug.setdefault(subscription.room.slug, set()).add(subscription)

    async def watch(self, slug: str, position: Standing) -> None:
        await self._bus.watch(slug, position)

    def remove_subscriber(self, subscription: Subscription) -> None:
        slug = subscription.room.slug
        subscribers = self._subscribers_by_slug.get(slug)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers_by_slug[slug]
                self._bus.unwatch(slug)

    # Fan-out (the `RoomFeed` the bus hands each room's messages to).

    def entries(self, slug: str, entries: list[Entry]) -> None:
        if not self._subscribers_by_slug.get(slug):
            return
        items: list[tuple[StreamId, str]] = []
        for entry_id, fields in entries:
            try:
                event = decode_event(slug, fields)
            except InvalidEvent:
                continue  # the archiver puts it in the dead letters, with the reason
            items.append((entry_id, frames.entry_frame(entry_id, event)))
        self._fan_out(slug, items)
        self.stats.fanout_lag_ms = max(0.0, time.time() * 1000 - entries[-1][0].ms)

    def missed(self, slug: str, messages: list[RoomItem]) -> None:
        self._fan_out(slug, [(m.id, frames.item(m)) for m in messages])
        self.stats.missed_delivered += len(messages)

    def lost(self, slug: str) -> None:
        for subscription in self._subscribers_by_slug.get(slug, ()):
            if subscription.announced:  # one still subscribing reads history anyway
                subscription.connection.offer(frames.resync(slug))
                self.stats.resyncs += 1

    async def archived(
        self, slug: str, after: StreamId, before: StreamId, limit: int
    ) -> list[RoomItem]:
        subscriptions = self._subscribers_by_slug.get(slug)
        if not subscriptions:
            return []  # no one here to give them to
        room_id = next(iter(subscriptions)).room.id
        return await self.history.archived_between(room_id, slug, after, before, limit)

    def _fan_out(self, slug: str, items: Iterable[tuple[StreamId, str]]) -> None:
        """Each (stream id, frame) to every subscriber of the room, in order."""
        subscriptions = self._subscribers_by_slug.get(slug)
        if not subscriptions:
            return
        for run in shared_runs(items):
            if len(run) == 1:
                item_id, frame = run[0]
                for subscription in subscriptions:
                    subscription.deliver(item_id, frame)
            else:
                shared = SharedRun([frame for _, frame in run])
                for subscription in subscriptions:
                    subscription.deliver_run(run, shared)
            self.stats.messages_out += len(subscriptions) * len(run)

    def _on_signal(self, slug: str, frame: str, skip_user: int | None) -> None:
        for subscription in self._subscribers_by_slug.get(slug, ()):
            connection = subscription.connection
            if subscription.announced and connection.user.id != skip_user:
                connection.offer(frame)

    # Access taken away (a member removed from a private room).

    async def access_lost(self, slug: str, user_id: int) -> None:
        """Tell every node that the user may no longer use the room: their subscriptions
        to it end at once, and no cached yes lets one more send through."""
        try:
            await self.signals.publish_access_lost(slug, user_id)
        except STORE_ERRORS as exc:  # the heartbeat's recheck ends them within 5 s
            log.warning("could not announce that user %s left %s: %s", user_id, slug, exc)

    def _on_access_lost(self, slug: str, user_id: int) -> None:
        for session in list(self._sessions.values()):
            if session.connection.user.id == user_id:
                session.access_lost(slug)

    # Frames for one user's sockets, on every node: read marks, changes to their rooms.

    async def tell_user(self, user_id: int | None, frame: str) -> None:
        """Send `frame` to every socket of the user (None: of every user), on every node.
        Advisory: a frame lost with Redis is made up by the client's next room list."""
        try:
            await self.signals.publish_to_user(user_id, frame)
        except STORE_ERRORS as exc:
            log.warning("could not tell user %s of a change: %s", user_id, exc)

    def _on_user_frame(self, user_id: int | None, frame: str) -> None:
        for session in list(self._sessions.values()):
            if user_id is None or session.connection.user.id == user_id:
                session.connection.offer(frame)

    async def read(self, user: Author, room: RoomRef, mark: StreamId) -> None:
        """The user has read the room up to `mark`: stored (coalesced) and told to their
        other sockets. A mark past the room's newest message is taken as that message."""
        last = await self.history.stream_last_id(room.slug)
        if last is not None and mark > last:
            mark = last
        if self.read_marks.note(user.id, room.id, mark):
            await self.tell_user(user.id, frames.read(room.slug, mark))

    # Sessions ended (logout, logout everywhere, a password change).

    async def signed_out(self, user_id: int) -> None:
        """Tell every node that sessions of the user ended: each checks that user's
        sockets at once and closes those whose session (or token) is gone."""
        try:
            await self.signals.publish_signed_out(user_id)
        except STORE_ERRORS as exc:  # the heartbeat's recheck closes them within 5 s
            log.warning("could not announce that user %s signed out: %s", user_id, exc)

    def _on_signed_out(self, user_id: int) -> None:
        for session in list(self._sessions.values()):
            if session.connection.user.id == user_id:
                session.connection.spawn(self._recheck_sign_in(session), name="sign-in check")

    async def valid_sign_ins(self, sign_ins: Collection[Hashable]) -> Collection[Hashable]:
        check = self._sign_in_check
        return sign_ins if check is None else await check(sign_ins)

    async def _recheck_sign_in(self, session: Session) -> None:
        try:
            await session.recheck_sign_in()
        except STORE_ERRORS as exc:  # the heartbeat asks again
            log.warning("cannot check a socket's session: %s", exc)

    # Moderation: restrictions in rooms and bans, on every node at once.

    async def restricted(self, restriction: moderation.Restriction) -> None:
        """Tell every node of a restriction changed in SQL (an `until_ms` in the past:
        lifted). Lost with Redis, the heartbeat's reload makes it up within a beat."""
        self.restrictions.apply(restriction)  # this node at once, whatever Redis does
        try:
            await self.signals.publish_restricted(restriction)
        except STORE_ERRORS as exc:
            log.warning("could not announce a restriction in %s: %s", restriction.slug, exc)

    def _on_restricted(self, restriction: moderation.Restriction) -> None:
        self.restrictions.apply(restriction)
        user_id, slug = restriction.user_id, restriction.slug
        in_force = restriction.active(restricted_now_ms())
        if restriction.kind == moderation.REMOVE:
            if not in_force:
                return
            told = moderation.refused(moderation.REMOVED, slug, restriction.until_ms)
            for session in list(self._sessions.values()):
                if session.connection.user.id == user_id:
                    session.removed(slug, told)
            return
        frame = moderation.muted(slug, restriction.until_ms if in_force else None)
        for session in list(self._sessions.values()):
            if session.connection.user.id == user_id:
                session.connection.offer(frame)

    async def banned(self, user_id: int, reason: str) -> None:
        """Close every socket of a banned user, on every node, at once. Lost with Redis,
        the heartbeat's session check closes them (their sessions are gone)."""
        self._on_banned(user_id, reason)
        try:
            await self.signals.publish_banned(user_id, reason)
        except STORE_ERRORS as exc:
            log.warning("could not announce that user %s is banned: %s", user_id, exc)

    def _on_banned(self, user_id: int, reason: str) -> None:
        for session in list(self._sessions.values()):
            if session.connection.user.id == user_id:
                session.connection.close(moderation.BANNED_CLOSE_CODE, reason)

    # Heartbeat: presence and connection counts stay alive, dead nodes' users leave,
    # sessions and private rooms are checked again.

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            self.sends.forget_full()
            try:
                await self._beat_once()
            except STORE_ERRORS as exc:
                log.warning("presence heartbeat failed: %s", exc)
            try:
                await self.restrictions.reload()
            except STORE_ERRORS as exc:
                log.warning("cannot read the room restrictions: %s", exc)

    async def _beat_once(self) -> None:
        sessions = list(self._sessions.values())
        await self.presence.refresh([entry for s in sessions for entry in s.presences()])
        await self._limit.refresh([(s.connection.user.id, s.connection.id) for s in sessions])
        for slug in list(self._subscribers_by_slug):
            for user in await self.presence.sweep(slug):
                await self.signals.publish(slug, frames.presence(slug, user, "leave"))
        sign_ins = {s.sign_in for s in sessions if s.sign_in is not None}
        valid = set(await self.valid_sign_ins(sign_ins)) if sign_ins else set()
        lost: set[tuple[int, int]] | None = None
        if self._membership_check is not None:
            # What was asked minus what is there: a subscription made while the query ran
            # was not asked about (its subscribe checked it), and is not judged by it.
            asked = {pair for s in sessions for pair in s.private_memberships()}
            lost = asked - set(await self._membership_check(asked)) if asked else set()
        for session in sessions:
            await session.recheck(valid, lost)
