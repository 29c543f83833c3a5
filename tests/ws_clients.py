"""Real WebSocket clients (the `websockets` package) for /ws contract tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from chat_servers import ChatNode

SESSION_COOKIE = "chatroom_session"


def ws_url(server: ChatNode) -> str:
    return server.url.replace("http://", "ws://", 1) + "/ws"


class ChatSocket:
    """A socket that can wait for the next frame of a kind, keeping the others for later."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.pending: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.socket.send(json.dumps(frame) if isinstance(frame, dict) else frame)

    async def next(self, kind: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        for index, frame in enumerate(self.pending):
            if kind is None or frame["type"] == kind:
                return self.pending.pop(index)
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.socket.recv())
                if kind is None or frame["type"] == kind:
                    return frame
                self.pending.append(frame)

    async def subscribe(self, room: str = "lobby", since: str | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "subscribe", "room": room}
        if since is not None:
            frame["since"] = since
        await self.send(frame)
        return await self.next("subscribed")

    async def messages(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        return [await self.next("message", timeout) for _ in range(count)]

    async def close(self) -> None:
        await self.socket.close()


def cookie_header(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={client.cookies.get(SESSION_COOKIE)}"}


async def open_socket(
    server: ChatNode,
    client: httpx.AsyncClient | None = None,
    *,
    origin: str | None = "same",
    headers: dict[str, str] | None = None,
    compression: str | None = None,
    open_timeout: float = 10,
    **options: Any,
) -> ChatSocket:
    """A socket with the client's session cookie and, by default, the site's own Origin."""
    sent = dict(headers or {})
    if client is not None:
        sent.update(cookie_header(client))
    socket = await connect(
        ws_url(server),
        origin=Origin(server.url) if origin == "same" else (Origin(origin) if origin else None),
        additional_headers=sent,
        compression=compression,
        open_timeout=open_timeout,
        **options,
    )
    return ChatSocket(socket)
