"""Two app nodes on one Redis and one SQL behave as one server over /ws."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from chat_servers import running_server
from chatroom.domain.stream_ids import StreamId
from conftest import Backend
from ws_clients import ChatSocket, open_socket, signed_up

SETTINGS = {"send_rate_per_s": "100000", "send_burst": "100000", "presence_expiry_s": "2"}


async def _send_many(socket: ChatSocket, name: str, count: int) -> None:
    for i in range(count):
        await socket.send(
            {"type": "send", "room": "lobby", "body": f"{name} {i}", "client_id": f"{i}"}
        )


async def test_clients_on_two_nodes_see_the_same_sequence_and_presence(
    backend: Backend, tmp_path: Path
) -> None:
    async with (
        running_server(backend, tmp_path, settings=SETTINGS) as one,
        running_server(backend, tmp_path, settings=SETTINGS) as two,
    ):
        alice_http, bob_http = await signed_up(one, "alice"), await signed_up(two, "bob")
        alice = await open_socket(one, alice_http)
        await alice.subscribe()
        bob = await open_socket(two, bob_http)  # the session made on node 2 works on node 2
        online = (await bob.subscribe())["online"]
        assert [u["username"] for u in online] == ["alice", "bob"]
        join = await alice.next("presence")
        assert (join["user"]["username"], join["state"]) == ("bob", "join")

        await asyncio.gather(_send_many(alice, "a", 150), _send_many(bob, "b", 150))
        seen_one = [m["id"] for m in await alice.messages(300)]
        seen_two = [m["id"] for m in await bob.messages(300)]
        assert seen_one == seen_two == sorted(seen_one, key=StreamId.parse)

        await bob.send({"type": "typing", "room": "lobby"})
        assert (await alice.next("typing"))["user"]["username"] == "bob"

        # The user's last connection closes: leave within 5 s, on the other node too.
        closed_at = time.monotonic()
        await bob.close()
        leave = await alice.next("presence", timeout=5)
        assert (leave["user"]["username"], leave["state"]) == ("bob", "leave")
        assert time.monotonic() - closed_at < 5
        await alice.close()
        for client in (alice_http, bob_http):
            await client.aclose()


async def test_the_users_of_a_dead_node_leave(backend: Backend, tmp_path: Path) -> None:
    async with (
        running_server(backend, tmp_path, settings=SETTINGS) as one,
        running_server(backend, tmp_path, settings=SETTINGS) as two,
    ):
        alice_http, bob_http = await signed_up(one, "alice"), await signed_up(one, "bob")
        alice = await open_socket(one, alice_http)
        await alice.subscribe()
        bob = await open_socket(two, bob_http)
        await bob.subscribe()
        assert (await alice.next("presence"))["state"] == "join"
        online = (await alice_http.get("/api/rooms/lobby/online")).json()["online"]
        assert sorted(u["username"] for u in online) == ["alice", "bob"]

        os.kill(two.process.pid, signal.SIGKILL)  # no goodbye from node 2
        killed_at = time.monotonic()
        leave = await alice.next("presence", timeout=30)
        assert (leave["user"]["username"], leave["state"]) == ("bob", "leave")
        # presence_expiry_s=2 here: gone within the expiry plus a sweep interval or so.
        assert time.monotonic() - killed_at < 5
        online = (await alice_http.get("/api/rooms/lobby/online")).json()["online"]
        assert [u["username"] for u in online] == ["alice"]
        await alice.close()
        for client in (alice_http, bob_http):
            await client.aclose()
