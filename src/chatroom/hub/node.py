"""What a connection's `Session` (hub/session.py) uses of its node, the `Hub`: a seam,
so that the session's protocol knows the node's parts by what they do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Hashable
from typing import Any, Protocol

from chatroom.domain.events import Author
from chatroom.domain.stream_ids import StreamId
from chatroom.history import History
from chatroom.hub.limits import SendLimiter
from chatroom.hub.presence import PresenceBoard
from chatroom.hub.restrictions import RestrictionBoard
from chatroom.hub.signals import RoomSignals
from chatroom.hub.subscription import RoomRef, Subscription
from chatroom.hub.typing import TypingGate
from chatroom.settings import Settings
from chatroom.streams.epochs import Standing
from chatroom.streams.writer import StreamWriter

# Says whether `user` may use room `slug` now: the room, or None (unknown or not allowed).
RoomAccess = Callable[[Author, str], Awaitable[RoomRef | None]]
# Which of the sign-ins given (the session or token each socket was opened with, opaque
# and hashable here) are still valid: one call for all of a node's sockets per heartbeat.
SignInCheck = Callable[[Collection[Any]], Awaitable[Collection[Any]]]
# Which of the (room id, user id) pairs given are memberships: one call for every private
# room subscription of a node's sockets per heartbeat.
MembershipCheck = Callable[[Collection[tuple[int, int]]], Awaitable[Collection[tuple[int, int]]]]


class Counters(Protocol):
    """The node's counters a session adds to (`HubStats`)."""

    messages_in: int
    messages_out: int


class Node(Protocol):
    """What a session uses of its node (the `Hub`)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def stats(self) -> Counters: ...
    @property
    def writer(self) -> StreamWriter: ...
    @property
    def history(self) -> History: ...
    @property
    def presence(self) -> PresenceBoard: ...
    @property
    def signals(self) -> RoomSignals: ...
    @property
    def sends(self) -> SendLimiter: ...
    @property
    def typing(self) -> TypingGate: ...
    @property
    def restrictions(self) -> RestrictionBoard: ...

    async def valid_sign_ins(self, sign_ins: Collection[Hashable]) -> Collection[Hashable]:
        """Those of the sign-ins still valid (all of them when the node checks none)."""
        ...

    def add_subscriber(self, subscription: Subscription) -> None:
        """Deliver the room's live messages to this subscription from now on."""
        ...

    async def watch(self, slug: str, position: Standing) -> None:
        """Read the room's stream after `position`, unless it is read already."""
        ...

    def remove_subscriber(self, subscription: Subscription) -> None:
        """Deliver no more live messages to this subscription."""
        ...

    async def read(self, user: Author, room: RoomRef, mark: StreamId) -> None:
        """Store the user's read mark in the room and tell their other sockets."""
        ...
