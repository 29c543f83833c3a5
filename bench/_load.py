"""A lean WebSocket load generator: many connections in one uvloop process.

The machine has two cores and the load generator shares them with the server under test,
so the client side must cost as little as possible per delivered frame. The websockets
library spends tens of microseconds per received message (futures, assembler, UTF-8
decoding); this client is a bare asyncio Protocol that walks the frames of each chunk in
place, never decodes JSON for a measured message, and reads the clock once per chunk.

Outgoing frames use a zero masking key: RFC 6455 asks clients to mask, which they do, and
a zero key makes the XOR a no-op, so sending costs no per-byte Python work. Servers cannot
tell the difference and unmask as usual.

A measured message carries `~b~<step>~<sent monotonic ns>~<seq>~` in its text; every
target echoes that text inside its own JSON envelope, so one byte search finds it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MARK = b"~b~"
# A send's client_id may carry `~a~<sent monotonic ns>~`: its ack then tells the ack latency.
ACK_MARK = b"~a~"
# Latency histogram: 0.1 ms buckets up to 30 s; the last bucket holds everything slower.
BUCKET_NS = 100_000
BUCKETS = 300_001


def body_mark(step: int, seq: int) -> str:
    """The measured part of a message body, stamped with the send time."""
    return f"~b~{step}~{time.monotonic_ns()}~{seq}~"


class HandshakeError(Exception):
    """The server refused the WebSocket upgrade."""


@dataclass
class Tally:
    """What the receivers saw during one ramp step."""

    step: int = -1
    histogram: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    delivered: int = 0
    stale: int = 0

    def reset(self, step: int) -> None:
        self.step = step
        self.histogram = [0] * BUCKETS
        self.delivered = 0
        self.stale = 0


class BenchSocket(asyncio.Protocol):
    """One client connection: upgrade, then count and time every measured message."""

    def __init__(
        self,
        request: bytes,
        tally: Tally,
        *,
        receiver: bool,
        on_control: Callable[[BenchSocket, bytes], None] | None = None,
    ) -> None:
        self.request = request
        self.tally = tally
        self.receiver = receiver
        self.on_control = on_control
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.upgraded = False
        self.buffer = b""
        self.received = 0  # measured messages of the current step
        self.close_code: int | None = None
        self.acks = 0
        self.errors = 0
        self.last_error = b""

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(f"connection lost during upgrade: {exc}"))
        if not self.ready.done():
            self.ready.set_exception(HandshakeError("connection lost before it was ready"))
            self.ready.exception()  # whoever awaits it still gets it; nobody else must
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if b" 101 " not in status + b" ":
                self.opened.set_exception(
                    HandshakeError(buf[:end].decode("latin-1").splitlines()[0])
                )
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            self.opened.set_result(None)
            buf = buf[end + 4 :]
        now = time.monotonic_ns()
        tally = self.tally
        step = tally.step
        i = 0
        n = len(buf)
        while n - i >= 2:
            # Server frames are never masked.
            length = buf[i + 1] & 0x7F
            if length < 126:
                start = i + 2
            elif length == 126:
                if n - i < 4:
                    break
                length = (buf[i + 2] << 8) | buf[i + 3]
                start = i + 4
            else:
                if n - i < 10:
                    break
                length = int.from_bytes(buf[i + 2 : i + 10], "big")
                start = i + 10
            end = start + length
            if end > n:
                break
            opcode = buf[i] & 0x0F
            i = end
            if opcode == 1:
                mark = buf.find(MARK, start, end)
                if mark >= 0:
                    if not self.receiver:
                        continue
                    a = mark + 3
                    b = buf.find(b"~", a, end)
                    if int(buf[a:b]) != step:
                        tally.stale += 1
                        continue
                    c = buf.find(b"~", b + 1, end)
                    bucket = (now - int(buf[b + 1 : c])) // BUCKET_NS
                    tally.histogram[bucket if bucket < BUCKETS else BUCKETS - 1] += 1
                    tally.delivered += 1
                    self.received += 1
                elif self.on_control is not None:
                    self.on_control(self, buf[start:end])
            elif opcode == 9:
                self.send_frame(0xA, buf[start:end])
            elif opcode == 8:
                if length >= 2:
                    self.close_code = int.from_bytes(buf[start : start + 2], "big")
                assert self.transport is not None
                self.transport.close()
                return
        self.buffer = buf[i:] if i < n else b""

    # -- sending

    def send_frame(self, opcode: int, payload: bytes) -> None:
        length = len(payload)
        if length < 126:
            header = bytes((0x80 | opcode, 0x80 | length))
        elif length < 65536:
            header = bytes((0x80 | opcode, 0xFE)) + length.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0xFF)) + length.to_bytes(8, "big")
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(header + b"\x00\x00\x00\x00" + payload)

    def send_text(self, payload: bytes) -> None:
        self.send_frame(0x1, payload)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.send_frame(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()

    def mark_ready(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)


def upgrade_request(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def open_socket(
    host: str,
    port: int,
    path: str,
    headers: dict[str, str],
    tally: Tally,
    *,
    receiver: bool,
    on_control: Callable[[BenchSocket, bytes], None] | None = None,
    timeout: float = 30.0,
) -> BenchSocket:
    loop = asyncio.get_running_loop()
    request = upgrade_request(host, port, path, headers)
    _, sock = await loop.create_connection(
        lambda: BenchSocket(request, tally, receiver=receiver, on_control=on_control), host, port
    )
    await asyncio.wait_for(sock.opened, timeout)
    return sock


async def open_many(
    count: int,
    opener: Callable[[int], asyncio.Future[BenchSocket] | object],
    *,
    concurrency: int = 50,
) -> list[BenchSocket]:
    """Open `count` sockets, at most `concurrency` upgrades in flight at once."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> BenchSocket:
        async with gate:
            return await opener(index)  # type: ignore[no-any-return,misc]

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def raise_fd_limit() -> int:
    """Lift the open-files soft limit to the hard limit: 1,000 clients need 1,000+ fds."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
