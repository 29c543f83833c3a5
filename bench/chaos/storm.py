"""The connect storm: a crowd of sockets opened over both nodes at once, then closed at once.

What a deploy or a network blip does to a busy site: every browser reconnects in the same
second, and later leaves in the same second. Each socket is a real WebSocket with a session
cookie that subscribes to one room; a few storm users share them (the campaign lifts the
per-user connection limit). Afterwards the storm users must be gone from every room's
presence within the product's bound: a lost leave would keep them "online" until expiry.
The nodes' logs must not show a Redis pool giving up ("Too many connections").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as redis_asyncio
from bench.chaos.clients import OPEN_TIMEOUT_S, SESSION_COOKIE, Account
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin

from chatroom import redis_keys

SOCKETS = 2000
USERS = 10  # storm users; each holds SOCKETS / USERS sockets
OPEN_WITHIN_S = 60.0  # a crowd of 2,000 takes a while on two cores: refused is what counts
LEAVE_WITHIN_S = 15.0  # the product: 5 s after the last close; the crowd's closes take more
POOL_EXHAUSTED = ("Too many connections", "No connection available")


@dataclass
class StormResult:
    opened: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # HTTP status or error -> count
    still_online: list[str] = field(default_factory=list)  # "room:user id" after the bound
    left_after_s: float | None = None  # from the closes to the last storm user gone

    def detail(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "refused": dict(self.refused),
            "still_online": self.still_online[:20],
            "left_after_s": self.left_after_s,
        }


async def _open(base: str, account: Account, room: str) -> ClientConnection:
    ws_url = base.replace("http://", "ws://", 1) + "/ws"
    ws = await connect(
        ws_url,
        origin=Origin(base),
        additional_headers={"Cookie": f"{SESSION_COOKIE}={account.cookie}"},
        open_timeout=OPEN_WITHIN_S,
        close_timeout=OPEN_TIMEOUT_S,
        ping_interval=None,
    )
    await ws.send(orjson.dumps({"type": "subscribe", "room": room}).decode())
    async with asyncio.timeout(OPEN_WITHIN_S):
        while True:  # until this socket is in the room (presence and messages may come first)
            frame = orjson.loads(await ws.recv())
            if frame.get("type") in ("subscribed", "error"):
                return ws


async def connect_storm(
    node_urls: list[str], users: list[Account], rooms: list[str], redis_url: str
) -> StormResult:
    result = StormResult()
    plan = [
        (node_urls[i % len(node_urls)], users[i % len(users)], rooms[i % len(rooms)])
        for i in range(SOCKETS)
    ]
    opened: list[ClientConnection] = []
    results = await asyncio.gather(*(_open(*one) for one in plan), return_exceptions=True)
    for outcome in results:
        if isinstance(outcome, ClientConnection):
            opened.append(outcome)
        elif isinstance(outcome, InvalidStatus):
            result.refused[str(outcome.response.status_code)] += 1
        else:
            result.refused[type(outcome).__name__] += 1
    result.opened = len(opened)

    async def close(ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
            await ws.close()

    await asyncio.gather(*(close(ws) for ws in opened))
    closed_at = time.monotonic()
    result.still_online = await _wait_until_gone(redis_url, users, rooms)
    if not result.still_online:
        result.left_after_s = round(time.monotonic() - closed_at, 1)
    return result


async def _wait_until_gone(redis_url: str, users: list[Account], rooms: list[str]) -> list[str]:
    """The storm users still online in some room once the bound has passed ([]: none)."""
    ids = {str(user.user_id) for user in users}
    client = redis_asyncio.Redis.from_url(redis_url, socket_timeout=5)
    try:
        deadline = time.monotonic() + LEAVE_WITHIN_S
        while True:
            online = []
            for room in rooms:
                members = await client.zrange(redis_keys.room_presence(room), 0, -1)
                online += [f"{room}:{m.decode()}" for m in members if m.decode() in ids]
            if not online or time.monotonic() > deadline:
                return online
            await asyncio.sleep(0.25)
    finally:
        await client.aclose()
