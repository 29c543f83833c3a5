"""The node's WebSocket protocol: uvicorn's, plus a direct send of ready-made frames.

A server's text frame is not masked, so every subscriber of a room gets the same bytes:
the hub builds a message's WebSocket frame once (`SharedText.wire`) and each connection
writes those bytes to its socket. Through ASGI every connection would encode the text and
build the frame again, and each send would go down the whole middleware chain.

`ChatroomWebSocketProtocol` offers `send_wire(frame)` to the app in the connection's scope
(extension `chatroom.send_wire`), and `send_wire_now(frame)`, which writes only when that
needs no wait (the hub's fan-out writes a message to every idle subscriber's socket back to
back, without waking a task per connection). Both keep uvicorn's flow control (nothing is
written while the socket's buffer is over its high-water mark) and send only while the
WebSocket is open.
Frames are whole (never fragmented) and uncompressed: permessage-deflate is off by
default, and even with it on an uncompressed message (RSV1 clear) is valid (RFC 7692).

Memory per idle socket: uvicorn's protocol keeps an `asyncio.Queue` of received events
and an `asyncio.Event` for its flow control, which allocate four deques and an Event of
their own up front (about 2 KiB); the node's protocol replaces them with `Inbox` and
`Flag`, which allocate nothing until a reader or a writer has to wait. It also lets go of
the upgrade's request and response (their headers) once the handshake is done: the
scope keeps the headers the app reads.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.protocol import State

from chatroom.web.http_protocol import guard_of

SEND_WIRE = "chatroom.send_wire"

_FIN_TEXT = 0x81  # FIN bit and opcode 1 (text)

# A keepalive timeout this late means the node's loop stood still, not the client; the
# pong is then looked for once more, this long after (one read of the sockets).
STALL_S = 1.0
PONG_GRACE_S = 0.1


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented WebSocket text frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((_FIN_TEXT, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", _FIN_TEXT, 126, size) + payload
    return struct.pack("!BBQ", _FIN_TEXT, 127, size) + payload


class _Waiters:
    """Futures of coroutines waiting for something, allocated only while one waits."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] | None = None

    async def _wait(self) -> None:
        """Until `_wake` (or `_wake_all`) resolves this waiter."""
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
                if not self._waiters:
                    self._waiters = None

    def _wake(self) -> None:
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)
                break

    def _wake_all(self) -> None:
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)


class Inbox(_Waiters):
    """The part of `asyncio.Queue` uvicorn's protocol uses (`put_nowait`, `get`, `empty`),
    unbounded as uvicorn's is (it pauses reading instead), allocating nothing while idle."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        super().__init__()
        self._items: list[Any] = []

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        self._wake()

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> Any:
        while not self._items:
            await self._wait()
        return self._items.pop(0)


class Flag(_Waiters):
    """The part of `asyncio.Event` uvicorn's protocol uses (`is_set`, `set`, `clear`,
    `wait`), allocating nothing while nobody waits."""

    __slots__ = ("_set",)

    def __init__(self, *, value: bool) -> None:
        super().__init__()
        self._set = value

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        self._wake_all()

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if not self._set:
            await self._wait()
        return True


class ChatroomWebSocketProtocol(WebSocketsSansIOProtocol):
    pong_grace_given = False  # on the instance only once given: idle sockets are the many

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag(value=True)  # type: ignore[assignment]

    def keepalive_timeout(self) -> None:
        """The pong is late: the client is gone (1011), unless the node was the late one.

        libuv runs the timers that are due before it reads the sockets: when the node's
        loop stood still past the timeout (the process paused, a stall), the pong that came
        in time still waits unread, and uvicorn would close a live client with 1011. A
        timeout that fires well after it was due looks once more after the next read."""
        timeout = self.ping_timeout or 0.0
        overdue = self.loop.time() - self.ping_sent_at - timeout
        if overdue > STALL_S and not self.pong_grace_given:
            self.pong_grace_given = True
            self.pong_timer = self.loop.call_later(PONG_GRACE_S, self.keepalive_timeout)
            return
        super().keepalive_timeout()

    def handle_pong(self, event: Frame) -> None:
        super().handle_pong(event)
        if self.pong_grace_given:
            self.pong_grace_given = False

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # uvicorn reads them only before the handshake completes.
            del self.request, self.response
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            # The app refused the upgrade with an HTTP answer, now sent: the handshake is
            # over. Otherwise uvicorn logs an ERROR ("returned without completing
            # handshake") for every refused upgrade, which anyone can send.
            self.handshake_complete = True

    def connection_lost(self, exc: Exception | None) -> None:
        # The connection guard counted it when it opened as HTTP (web/http_protocol.py).
        guard = guard_of(self.config)
        if guard is not None:
            guard.release(self.transport)
        super().connection_lost(exc)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the upgrade was refused
        if scope is not None:
            scope["extensions"][SEND_WIRE] = {
                "send": self.send_wire,
                "send_now": self.send_wire_now,
            }

    async def send_wire(self, frame: bytes) -> None:
        """Write one ready-made frame; raises ClientDisconnected when it cannot be sent."""
        await self.writable.wait()
        if not self._open():
            raise ClientDisconnected()
        self.transport.write(frame)

    def send_wire_now(self, frame: bytes) -> bool:
        """Write one ready-made frame if the socket takes it now; False: it did not (its
        buffer is full, or the WebSocket is not open), and the caller queues it."""
        # `_open()` spelled out: this runs once per subscriber per message.
        transport = self.transport
        if (
            not self.writable.is_set()
            or self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.conn.state is not State.OPEN
            or transport.is_closing()
        ):
            return False
        transport.write(frame)
        return True

    def _open(self) -> bool:
        return not (
            self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.conn.state is not State.OPEN
            or self.transport.is_closing()
        )
