"""A connection's replies in the order its frames arrived, while its sends are in flight.

The reader does not wait for a send's append before it reads the next frame: it starts
the append (as a task) and goes on, so one connection can have several appends in the
stream writer's pipeline at once. Each reply (an ack, or an error carrying the send's
client_id) is still offered in the order the frames arrived: a reply that is ready while
an earlier send is in flight waits behind it. At most `window` replies wait at a time;
a reader with a full window waits before it takes the next frame (backpressure).

Idle connections are the many: the queue is allocated on the first send in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from chatroom.domain.frames import CloseCode
from chatroom.hub.connection import Connection

log = logging.getLogger(__name__)

# How many replies of one connection may wait (sends in flight, and what is behind them).
SEND_WINDOW = 32


class Replies:
    __slots__ = ("_connection", "_queue", "_waiter", "_window")

    def __init__(self, connection: Connection, *, window: int = SEND_WINDOW) -> None:
        self._connection = connection
        self._window = window
        self._queue: deque[str | asyncio.Task[str]] | None = None
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

    def follow(self, reply: asyncio.Task[str]) -> None:
        """A reply still being made (a send's append): offered, in turn, when it is done."""
        if self._queue is None:
            self._queue = deque()
        self._queue.append(reply)
        reply.add_done_callback(self._flush)

    async def room_for_one(self) -> None:
        """Wait until one more reply may wait (the window is not full)."""
        await self._wait_until(self._window - 1)

    async def drained(self) -> None:
        """Wait until every reply so far is offered (a frame that must not pass them)."""
        await self._wait_until(0)

    async def settle(self, *, within_s: float) -> None:
        """At the connection's end: let sends in flight finish (what the client sent is
        stored, as when it was read), at most `within_s`; cancel what is left."""
        tasks = [item for item in self._queue or () if isinstance(item, asyncio.Task)]
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

    def _flush(self, _done: asyncio.Task[str]) -> None:
        queue = self._queue
        if queue is None:
            return
        while queue:
            head = queue[0]
            if isinstance(head, asyncio.Task):
                if not head.done():
                    break
                queue.popleft()
                if head.cancelled():
                    continue
                failure = head.exception()
                if failure is not None:
                    log.error("a send of %r failed", self._connection, exc_info=failure)
                    self._connection.close(CloseCode.INTERNAL_ERROR, "server error")
                    continue
                self._connection.offer(head.result())
            else:
                queue.popleft()
                self._connection.offer(head)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if not queue:
            self._queue = None  # idle again: give the memory back
