"""An in-memory Transport for hub unit tests: the client side is a queue and a list; and
the client's common steps on it (subscribe, send, read the next messages)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from chatroom.hub.transport import TransportClosed


class FakeTransport:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.reading = asyncio.Event()  # cleared: the client reads nothing (sends block)
        self.reading.set()
        self._arrived = asyncio.Condition()
        self._taken: set[int] = set()
        self._first_untaken = 0

    # The client's side.

    def push(self, frame: dict[str, Any] | str | bytes) -> None:
        self.inbox.put_nowait(json.dumps(frame) if isinstance(frame, dict) else frame)

    def leave(self) -> None:
        self.inbox.put_nowait(None)

    async def next(self, kind: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        """The oldest frame not taken yet (of `kind`, leaving the others for later)."""
        async with asyncio.timeout(timeout):
            while True:
                for index in range(self._first_untaken, len(self.sent)):
                    if index in self._taken:
                        continue
                    frame: dict[str, Any] = json.loads(self.sent[index])
                    if kind is None or frame["type"] == kind:
                        self._taken.add(index)
                        while self._first_untaken in self._taken:
                            self._first_untaken += 1
                        return frame
                seen = len(self.sent)
                async with self._arrived:
                    await self._arrived.wait_for(lambda seen=seen: len(self.sent) > seen)

    async def wait_closed(self, timeout: float = 5.0) -> tuple[int, str]:
        async with asyncio.timeout(timeout):
            async with self._arrived:
                await self._arrived.wait_for(lambda: self.closed is not None)
        assert self.closed is not None
        return self.closed

    # The server's side (the Transport protocol).

    async def receive(self) -> str | bytes:
        frame = await self.inbox.get()
        if frame is None or self.closed is not None:
            raise TransportClosed("the client left")
        return frame

    async def send(self, frame: str) -> None:
        await self.reading.wait()
        if self.closed is not None:
            raise TransportClosed("closed")
        async with self._arrived:
            self.sent.append(frame)
            self._arrived.notify_all()

    async def close(self, code: int, reason: str) -> None:
        async with self._arrived:
            if self.closed is None:
                self.closed = (code, reason)
            self._arrived.notify_all()
        self.inbox.put_nowait(None)


# The client's common steps.


async def subscribe(
    transport: FakeTransport, room: str = "lobby", since: str | None = None
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "subscribe", "room": room}
    if since is not None:
        frame["since"] = since
    transport.push(frame)
    return await transport.next("subscribed")


async def send(transport: FakeTransport, body: str, client_id: str, room: str = "lobby") -> str:
    transport.push({"type": "send", "room": room, "body": body, "client_id": client_id})
    ack = await transport.next("ack")
    assert ack["client_id"] == client_id
    return str(ack["id"])


async def messages(transport: FakeTransport, count: int) -> list[dict[str, Any]]:
    return [await transport.next("message") for _ in range(count)]
