"""A connect and disconnect storm on one node: hundreds of sockets opening at once, then
closing at once, with the node's Redis pools far smaller than the crowd."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from redis.asyncio import Redis
from websockets.exceptions import InvalidStatus

from chatroom import redis_keys
from conftest import SignUp, StartApp
from waiting import wait_until
from ws_clients import ChatSocket, open_socket

USERS = 10
SOCKETS_PER_USER = 50  # 500 sockets: eight times the pool of 64 connections
# Presence expires long after the test: every leave seen here is the closing socket's own,
# none is the heartbeat sweep's. Every socket comes from 127.0.0.1: the per-address limit
# is lifted with the per-user one.
SETTINGS = {
    "max_connections_per_user": "100",
    "max_connections_per_address": "1000",
    "presence_expiry_s": "60",
}
STORM_WITHIN_S = 60.0


async def _open_all(node_url: str, clients: list[httpx.AsyncClient]) -> list[ChatSocket]:
    from chat_servers import ChatNode

    node = ChatNode(node_url)

    async def open_one(client: httpx.AsyncClient) -> ChatSocket:
        socket = await open_socket(node, client, open_timeout=STORM_WITHIN_S)
        await socket.subscribe()
        return socket

    opening = [open_one(client) for client in clients for _ in range(SOCKETS_PER_USER)]
    results = await asyncio.gather(*opening, return_exceptions=True)
    refused = [r for r in results if isinstance(r, BaseException)]
    opened = [r for r in results if isinstance(r, ChatSocket)]
    if refused:  # close what did open before failing, so that the node can stop
        await asyncio.gather(*(s.close() for s in opened), return_exceptions=True)
    statuses = [r.response.status_code for r in refused if isinstance(r, InvalidStatus)]
    assert not refused, f"{len(refused)} sockets refused (HTTP {statuses[:5]}): {refused[:3]}"
    return opened


async def test_a_storm_of_sockets_opening_and_closing_at_once_loses_no_presence(
    chat_app: StartApp,
    signed_up: SignUp,
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    node = await chat_app(settings=SETTINGS)
    clients = [await signed_up(node, f"crowd{i}") for i in range(USERS)]
    watcher_http = await signed_up(node, "watcher")
    watcher = await open_socket(node, watcher_http)
    try:
        await watcher.subscribe()

        sockets = await _open_all(node.url, clients)  # every one at once
        joined = {(await watcher.next("presence", 30))["user"]["username"] for _ in clients}
        assert joined == {f"crowd{i}" for i in range(USERS)}

        await asyncio.gather(*(socket.close() for socket in sockets))  # every one at once
        # Every socket's leave was written: each user left once, and Redis holds no
        # connection of theirs (a lost leave would stay there until its expiry, a minute).
        left = [await watcher.next("presence", STORM_WITHIN_S) for _ in clients]
        assert {f["user"]["username"] for f in left} == {f"crowd{i}" for i in range(USERS)}
        assert {f["state"] for f in left} == {"leave"}

        async def nothing_left() -> bool:
            crowd = [int(u) for u in await redis.zrange(redis_keys.room_presence("lobby"), 0, -1)]
            return len(crowd) == 1  # the watcher alone

        await wait_until(nothing_left, STORM_WITHIN_S, what="only the watcher is online")
        user_ids = [(await client.get("/api/me")).json()["user"]["id"] for client in clients]
        for user_id in user_ids:
            presence = redis_keys.room_presence_connections("lobby", user_id)
            assert await redis.zcard(presence) == 0

        # The connection count across nodes (the per-user limit) released them too: each
        # socket's release comes after its presence leave, so it is waited for as well.
        async def all_released() -> bool:
            counts = [await redis.zcard(redis_keys.user_connections(u)) for u in user_ids]
            return not any(counts)

        await wait_until(all_released, STORM_WITHIN_S, what="every connection count released")
    finally:
        await watcher.close()
    trouble = [
        r.getMessage()
        for r in caplog.records
        if "Too many connections" in r.getMessage() or "No connection available" in r.getMessage()
    ]
    assert not trouble, trouble[:3]
