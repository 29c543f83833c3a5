"""One client connection: a bounded outbound queue, a reader task and a writer task.

Every frame for the client goes through `offer()`, which never waits: when the queue is
full the client is not keeping up, and it is disconnected with CloseCode.SLOW_CONSUMER
rather than buffered without bound. The reader runs as its own task; the writer runs in
the socket's own task (the one serving the WebSocket), which saves a task per idle
connection. Whichever ends first stops the other: the reader's end wakes the writer, and
a close decided while the writer is stuck sending to a client that reads nothing cancels
that send.

Idle connections are the many: nothing here is allocated before it is needed (no
`asyncio.Event`s or deques, which cost most of a kilobyte each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from chatroom.domain.events import Author
from chatroom.domain.frames import CloseCode
from chatroom.hub.transport import Transport, TransportClosed

log = logging.getLogger(__name__)

# How long a close may take when the client reads nothing: then the socket is dropped.
CLOSE_TIMEOUT_S = 5.0


def _resolve(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Connection:
    __slots__ = (
        "_background",
        "_close",
        "_low_water",
        "_queue",
        "_queue_max",
        "_queued",
        "_reader_done",
        "_room_waiter",
        "_send_cancelled",
        "_send_now",
        "_sending",
        "_task",
        "_transport",
        "_wakeup",
        "id",
        "user",
    )

    def __init__(
        self,
        transport: Transport,
        user: Author,
        *,
        queue_max: int,
        connection_id: str | None = None,
    ) -> None:
        self.id = connection_id or secrets.token_hex(8)
        self.user = user
        self._transport = transport
        self._send_now: Callable[[str], bool] | None = getattr(transport, "send_now", None)
        # Frames not yet handed to the writer; `_queued` also counts the batch it sends.
        self._queue: list[str] = []
        self._queued = 0
        self._queue_max = queue_max
        self._low_water = queue_max // 2
        self._wakeup: asyncio.Future[None] | None = None  # the idle writer waits on it
        self._room_waiter: asyncio.Future[None] | None = None  # replays wait on it
        self._close: tuple[int, str] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._sending = False
        self._send_cancelled = False
        self._reader_done = False
        self._background: set[asyncio.Task[None]] | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.id} of {self.user.username}>"

    @property
    def closing(self) -> bool:
        return self._close is not None

    @property
    def close_code(self) -> int | None:
        return self._close[0] if self._close else None

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def queue_max(self) -> int:
        return self._queue_max

    def offer(self, frame: str) -> bool:
        """Queue a frame for the client, never waiting; False if it was not taken."""
        if self._close is not None:
            return False
        if self._queued >= self._queue_max:
            self.close(
                CloseCode.SLOW_CONSUMER,
                f"too slow: {self._queue_max} frames waiting to be read",
            )
            return False
        # Nothing queued, nothing being sent: a frame the socket takes at once goes out
        # now, in order, without waking the writer.
        send_now = self._send_now
        if not self._queued and not self._sending and send_now is not None and send_now(frame):
            return True
        self._queue.append(frame)
        self._queued += 1
        _resolve(self._wakeup)
        return True

    async def wait_writable(self) -> None:
        """Wait until the queue is at most half full (for replays, which can wait)."""
        while self._queued > self._low_water and self._close is None:
            if self._room_waiter is None or self._room_waiter.done():
                self._room_waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._room_waiter)

    def close(self, code: int, reason: str) -> None:
        """Decide to close: frames still queued are dropped, the socket closes with `code`."""
        if self._close is not None:
            return
        self._close = (code, reason[:120])  # a close reason is at most 123 bytes
        self._queue = []
        self._queued = 0
        _resolve(self._wakeup)
        _resolve(self._room_waiter)  # a replay waiting for room sees `closing`
        if self._sending and self._task is not None:
            # The writer is stuck in a send to a client that reads nothing.
            self._send_cancelled = True
            self._task.cancel()

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run work owned by this connection; it is cancelled when the connection ends."""
        task = asyncio.create_task(work, name=f"{name} {self.id}")
        if self._background is None:
            self._background = set()
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def run(self, on_frame: Callable[[str | bytes], Awaitable[None]]) -> None:
        """Serve the connection until the peer leaves or a close is decided."""
        self._task = asyncio.current_task()
        reader = asyncio.create_task(self._read(on_frame), name=f"reader {self.id}")
        reader.add_done_callback(self._on_reader_done)
        try:
            await self._write()
        except asyncio.CancelledError:
            if not self._send_cancelled or self._task is None:
                raise
            self._task.uncancel()  # our own cancel of a stuck send: not a shutdown
        except TransportClosed:
            pass
        finally:
            tasks = [reader, *(self._background or ())]
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for task, result in zip(tasks, results, strict=True):
                if isinstance(result, Exception) and not isinstance(result, TransportClosed):
                    log.error("%s of %r failed", task.get_name(), self, exc_info=result)
                    self.close(CloseCode.INTERNAL_ERROR, "server error")
            if self._close is not None:
                await self._close_transport(*self._close)

    def _on_reader_done(self, _task: asyncio.Task[None]) -> None:
        self._reader_done = True
        _resolve(self._wakeup)

    async def _read(self, on_frame: Callable[[str | bytes], Awaitable[None]]) -> None:
        with contextlib.suppress(TransportClosed):
            while self._close is None:
                frame = await self._transport.receive()
                await on_frame(frame)

    async def _write(self) -> None:
        transport = self._transport
        loop = asyncio.get_running_loop()
        while self._close is None and not self._reader_done:
            if not self._queue:
                self._wakeup = loop.create_future()
                await self._wakeup
                self._wakeup = None
                continue
            batch, self._queue = self._queue, []
            for frame in batch:
                self._sending = True
                try:
                    await transport.send(frame)
                finally:
                    self._sending = False
                if self._close is not None:
                    return
                self._queued -= 1
                if self._queued <= self._low_water:
                    _resolve(self._room_waiter)

    async def _close_transport(self, code: int, reason: str) -> None:
        with contextlib.suppress(TransportClosed, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._transport.close(code, reason)
