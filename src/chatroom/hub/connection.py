"""One client connection: a bounded outbound queue, its reader and its writer.

Every frame for the client goes through `offer()`, which never waits: when the queue is
full the client is not keeping up, and it is disconnected with CloseCode.SLOW_CONSUMER
rather than buffered without bound. A frame the socket takes at once (nothing queued,
the socket's buffer not full) is written inside `offer()`; only frames that must wait are
queued, and a writer task exists only while some are. The reader runs in the socket's own
task (the one serving the WebSocket), so an idle connection costs no task of its own.
Whichever ends first stops the other: a close decided elsewhere interrupts the reader's
wait for the next frame, and cancels the writer when it is stuck sending to a client
that reads nothing.

Idle connections are the many: nothing here is allocated before it is needed (no
`asyncio.Event`s, deques or tasks, which cost from a few hundred bytes to a kilobyte
each).
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
from chatroom.hub.transport import SharedRun, Transport, TransportClosed

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
        "_in_receive",
        "_low_water",
        "_queue",
        "_queue_max",
        "_queued",
        "_read_cancelled",
        "_room_waiter",
        "_running",
        "_send_now",
        "_send_run_now",
        "_sending",
        "_task",
        "_transport",
        "_writer",
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
        self._send_run_now: Callable[[SharedRun], bool] | None = getattr(
            transport, "send_run_now", None
        )
        # Frames not yet handed to the writer; `_queued` also counts the batch it sends.
        self._queue: list[str] = []
        self._queued = 0
        self._queue_max = queue_max
        self._low_water = queue_max // 2
        self._room_waiter: asyncio.Future[None] | None = None  # replays wait on it
        self._close: tuple[int, str] | None = None
        self._task: asyncio.Task[Any] | None = None  # the socket's task: `run`, the reader
        self._running = False
        self._in_receive = False  # the reader waits for the client's next frame
        self._read_cancelled = False  # ... and a close interrupted that wait
        self._writer: asyncio.Task[None] | None = None  # only while frames are queued
        self._sending = False
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
        # now, in order, without a task.
        send_now = self._send_now
        if not self._queued and not self._sending and send_now is not None and send_now(frame):
            return True
        self._queue.append(frame)
        self._queued += 1
        if self._writer is None and self._running:
            self._start_writer()
        return True

    def offer_run(self, run: SharedRun) -> None:
        """Queue a room's consecutive live messages, never waiting: as `offer` for each,
        in one socket write when the socket takes them all at once."""
        if self._close is not None:
            return
        send_run_now = self._send_run_now
        idle = not self._queued and not self._sending
        if idle and send_run_now is not None and send_run_now(run):
            return
        for frame in run.frames:
            if not self.offer(frame):
                return

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
        _resolve(self._room_waiter)  # a replay waiting for room sees `closing`
        if self._sending and self._writer is not None:
            self._writer.cancel()  # stuck in a send to a client that reads nothing
        self._stop_reading()

    def _stop_reading(self) -> None:
        """Interrupt the reader's wait for the next frame (a frame being handled is
        handled to its end; the reader then sees the close and stops)."""
        if self._in_receive and self._task is not None:
            self._read_cancelled = True
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
        self._running = True
        if self._queue:
            self._start_writer()
        try:
            await self._read(on_frame)
        finally:
            self._running = False
            tasks = [*(() if self._writer is None else (self._writer,)), *(self._background or ())]
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for task, result in zip(tasks, results, strict=True):
                if isinstance(result, Exception) and not isinstance(result, TransportClosed):
                    log.error("%s of %r failed", task.get_name(), self, exc_info=result)
                    self.close(CloseCode.INTERNAL_ERROR, "server error")
            if self._close is not None:
                await self._close_transport(*self._close)

    async def _read(self, on_frame: Callable[[str | bytes], Awaitable[None]]) -> None:
        transport = self._transport
        try:
            while self._close is None:
                self._in_receive = True
                try:
                    frame = await transport.receive()
                except asyncio.CancelledError:
                    if not self._read_cancelled or self._task is None:
                        raise
                    self._task.uncancel()  # our own interruption (`close`): not a shutdown
                    return
                finally:
                    self._in_receive = False
                await on_frame(frame)
        except TransportClosed:
            pass
        except Exception:
            log.exception("reader of %r failed", self)
            self.close(CloseCode.INTERNAL_ERROR, "server error")

    def _start_writer(self) -> None:
        self._writer = asyncio.create_task(self._write(), name=f"writer {self.id}")

    async def _write(self) -> None:
        """Send the queued frames in order; the task ends when the queue is empty."""
        transport = self._transport
        try:
            while self._queue and self._close is None:
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
        except TransportClosed:
            self._stop_reading()  # the peer is gone: the reader need not wait for it
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None

    async def _close_transport(self, code: int, reason: str) -> None:
        with contextlib.suppress(TransportClosed, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._transport.close(code, reason)
