"""A connection's replies in the order its frames arrived, while its sends are in flight.

The reader does not wait for a send's append before it reads the next frame: it queues
the append in the stream writer (a future, no task of its own) and goes on, so one
connection can have several appends in the writer's pipeline at once. Each reply (an
ack, or an error carrying the send's client_id) is still offered in the order the frames
arrived: a reply that is ready while an earlier send is in flight waits behind it. At
most `window` replies wait at a time; a reader with a full window waits before it takes
the next frame (backpressure).

Idle connections are the many: the queue is allocated on the first send in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from chatroom.domain.frames import CloseCode
from chatroom.hub.connection import Connection

log = logging.getLogger(__name__)

# How many replies of one connection may wait (sends in flight, and what is behind them).
SEND_WINDOW = 32

# Makes the reply frame of a pending reply once it is done (it may raise: an unexpected
# failure, which closes the connection with 1011).
MakeReply = Callable[["asyncio.Future[Any]"], str]


def _its_result(done: asyncio.Future[Any]) -> str:
    result: str = done.result()
    return result


# A reply still being made: what it waits for, and how its frame is made from it then.
_Pending = tuple["asyncio.Future[Any]", MakeReply]


class Replies:
    __slots__ = ("_connection", "_queue", "_waiter", "_window")

    def __init__(self, connection: Connection, *, window: int = SEND_WINDOW) -> None:
        self._connection = connection
        self._window = window
        self._queue: deque[str | _Pending] | None = None
        self._waiter: asyncio.Future[None] | None = None  # a reader waiting for room

    @property
    def waiting(self) -> int:
        """Replies not offered yet: sends in flight and the replies queued behind them."""
        return len(self._queue) if self._queue else 0

    def answer(self, frame: str) -> None:
        """A reply that is ready now: offered at once unless an earlier send is in flight."""
        if self._queue:
            self._queue.append(frame)
        else:
            self._connection.offer(frame)

    def follow(self, pending: asyncio.Future[Any], reply: MakeReply = _its_result) -> None:
        """A reply still being made (a send's append): when `pending` is done,
        `reply(pending)` is offered in turn (by default its result is the frame)."""
        if self._queue is None:
            self._queue = deque()
        self._queue.append((pending, reply))
        pending.add_done_callback(self._flush)

    async def room_for_one(self) -> None:
        """Wait until one more reply may wait (the window is not full)."""
        await self._wait_until(self._window - 1)

    async def drained(self) -> None:
        """Wait until every reply so far is offered (a frame that must not pass them)."""
        await self._wait_until(0)

    async def settle(self, *, within_s: float) -> None:
        """At the connection's end: let sends in flight finish (what the client sent is
        stored, as when it was read), at most `within_s`; cancel what is left."""
        tasks = [item[0] for item in self._queue or () if isinstance(item, tuple)]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=within_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    async def _wait_until(self, most: int) -> None:
        while self.waiting > most and not self._connection.closing:
            if self._waiter is None or self._waiter.done():
                self._waiter = asyncio.get_running_loop().create_future()
            # Shielded: a cancelled reader must not cancel the future others may share.
            await asyncio.shield(self._waiter)

    def _flush(self, _done: asyncio.Future[Any]) -> None:
        queue = self._queue
        if queue is None:
            return
        while queue:
            head = queue[0]
            if isinstance(head, tuple):
                pending, reply = head
                if not pending.done():
                    break
                queue.popleft()
                if pending.cancelled():
                    continue
                try:
                    frame = reply(pending)
                except Exception as failure:
                    log.error("a send of %r failed", self._connection, exc_info=failure)
                    self._connection.close(CloseCode.INTERNAL_ERROR, "server error")
                    continue
                self._connection.offer(frame)
            else:
                queue.popleft()
                self._connection.offer(head)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if not queue:
            self._queue = None  # idle again: give the memory back
