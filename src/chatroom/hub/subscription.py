"""One connection's subscription to one room: where its message sequence stands.

`last_sent` is the id of the last message given to the client; anything at or below it is
dropped, so a message reaching the subscription twice (from a replayed page and from the
live fan-out at the seam) is sent once. Until the subscription is live (the `subscribed`
frame and any replay are out), live messages wait in a bounded buffer; if it overflows,
the buffer is dropped and the replay reads on from the stream instead: nothing is lost,
since every message is in the room's history.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from chatroom.domain.stream_ids import ZERO, StreamId
from chatroom.hub.connection import Connection
from chatroom.hub.transport import SharedRun, SharedText


@dataclass(frozen=True, slots=True)
class RoomRef:
    """A room the user may use, as the web layer's authorization found it."""

    id: int
    slug: str
    private: bool
    moderator: bool = False  # the user owns the room or is an admin: may delete any message


class Subscription:
    __slots__ = (
        "_buffer",
        "_buffer_max",
        "announced",
        "connection",
        "last_sent",
        "live",
        "overflowed",
        "replay",
        "room",
    )

    def __init__(self, connection: Connection, room: RoomRef, *, buffer_max: int) -> None:
        self.connection = connection
        self.room = room
        self.last_sent: StreamId = ZERO
        self.live = False  # False: live messages wait in the buffer
        self.announced = False  # the `subscribed` frame is out: presence and typing may follow
        self.overflowed = False
        self.replay: asyncio.Task[None] | None = None
        self._buffer: list[tuple[StreamId, str]] = []
        self._buffer_max = buffer_max

    def deliver(self, message_id: StreamId, frame: str) -> None:
        """A message from the live fan-out, in stream order."""
        if not self.live:
            if len(self._buffer) >= self._buffer_max:
                self.overflowed = True
                self._buffer.clear()
            else:
                self._buffer.append((message_id, frame))
            return
        # `message_id > self.last_sent`, spelled out: this runs once per subscriber per
        # message, and the dataclass's generated comparison builds two tuples per call.
        last = self.last_sent
        if message_id.ms > last.ms or (message_id.ms == last.ms and message_id.seq > last.seq):
            self.last_sent = message_id
            self.connection.offer(frame)

    def deliver_run(self, run: list[tuple[StreamId, SharedText]], shared: SharedRun) -> None:
        """Consecutive messages from the live fan-out, in stream order: all in one socket
        write when all are new to this subscription (the usual case), else one by one."""
        first, last = run[0][0], self.last_sent
        if self.live and (first.ms > last.ms or (first.ms == last.ms and first.seq > last.seq)):
            self.last_sent = run[-1][0]
            self.connection.offer_run(shared)
            return
        for message_id, frame in run:
            self.deliver(message_id, frame)

    def replayed(self, message_id: StreamId, frame: str) -> None:
        """A message from a history page, in stream order."""
        if message_id > self.last_sent:
            self.last_sent = message_id
            self.connection.offer(frame)

    def go_live(self) -> bool:
        """Send what the buffer holds after `last_sent` and go live; False when the buffer
        overflowed meanwhile (the caller reads history on from `last_sent`, then retries)."""
        if self.overflowed:
            self.overflowed = False
            self._buffer.clear()
            return False
        buffered, self._buffer = self._buffer, []
        self.live = True
        for message_id, frame in buffered:
            self.replayed(message_id, frame)
        return True
