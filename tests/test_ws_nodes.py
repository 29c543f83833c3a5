"""Two app nodes on one Redis and one SQL behave as one server over /ws."""

from __future__ import annotations

import asyncio
import os
import signal

from chatroom.domain.stream_ids import StreamId
from conftest import OpenSocket, SignUp, StartServer
from ws_clients import ChatSocket

SETTINGS = {
    "send_rate_per_s": "100000",
    "send_burst": "100000",
    "frame_rate_per_s": "100000",
    "frame_burst": "100000",
    "presence_expiry_s": "2",
}
# The product's bound: a user's leave reaches every node within 5 s of their last
# connection closing or of their node dying (presence_expiry_s=2 here, plus a sweep or
# so). A removal from a private room ends their subscription on every node at once (a
# signal, in milliseconds): 10 s bounds it on a slow machine, before the first heartbeat
# (15 s after the node's start) could do it instead.
LEAVE_WITHIN_S = 5
REMOVAL_WITHIN_S = 10


async def _send_many(socket: ChatSocket, name: str, count: int) -> None:
    for i in range(count):
        await socket.send(
            {"type": "send", "room": "lobby", "body": f"{name} {i}", "client_id": f"{i}"}
        )


async def test_clients_on_two_nodes_see_the_same_sequence_and_presence(
    chat_server: StartServer, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    one, two = await chat_server(settings=SETTINGS), await chat_server(settings=SETTINGS)
    alice_http, bob_http = await signed_up(one, "alice"), await signed_up(two, "bob")
    alice = await chat_socket(one, alice_http)
    await alice.subscribe()
    bob = await chat_socket(two, bob_http)  # the session made on node 2 works on node 2
    online = (await bob.subscribe())["online"]
    assert [u["username"] for u in online] == ["alice", "bob"]
    join = await alice.next("presence")
    assert (join["user"]["username"], join["state"]) == ("bob", "join")

    await asyncio.gather(_send_many(alice, "a", 150), _send_many(bob, "b", 150))
    seen_one = [m["id"] for m in await alice.messages(300)]
    seen_two = [m["id"] for m in await bob.messages(300)]
    # Every send acked. Read too so that no client holds over 16 unread frames: the
    # websockets client then stops reading and its close waits out close_timeout.
    for socket in (alice, bob):
        assert len([await socket.next("ack") for _ in range(150)]) == 150
    assert seen_one == seen_two == sorted(seen_one, key=StreamId.parse)

    await bob.send({"type": "typing", "room": "lobby"})
    assert (await alice.next("typing"))["user"]["username"] == "bob"

    # The user's last connection closes: leave within 5 s, on the other node too.
    await bob.close()
    leave = await alice.next("presence", timeout=LEAVE_WITHIN_S)
    assert (leave["user"]["username"], leave["state"]) == ("bob", "leave")


async def test_the_users_of_a_dead_node_leave(
    chat_server: StartServer, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    one, two = await chat_server(settings=SETTINGS), await chat_server(settings=SETTINGS)
    alice_http, bob_http = await signed_up(one, "alice"), await signed_up(one, "bob")
    alice = await chat_socket(one, alice_http)
    await alice.subscribe()
    bob = await chat_socket(two, bob_http)
    await bob.subscribe()
    assert (await alice.next("presence"))["state"] == "join"
    online = (await alice_http.get("/api/rooms/lobby/online")).json()["online"]
    assert sorted(u["username"] for u in online) == ["alice", "bob"]

    os.kill(two.process.pid, signal.SIGKILL)  # no goodbye from node 2
    leave = await alice.next("presence", timeout=LEAVE_WITHIN_S)
    assert (leave["user"]["username"], leave["state"]) == ("bob", "leave")
    online = (await alice_http.get("/api/rooms/lobby/online")).json()["online"]
    assert [u["username"] for u in online] == ["alice"]


async def test_a_member_removed_on_one_node_loses_the_room_on_the_other_at_once(
    chat_server: StartServer, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    # A heartbeat every 15 s: what ends bob's subscription here is the removal's signal.
    settings = {**SETTINGS, "presence_expiry_s": "60"}
    one, two = await chat_server(settings=settings), await chat_server(settings=settings)
    owner_http, bob_http = await signed_up(one, "owner"), await signed_up(one, "bob")
    created = await owner_http.post(
        "/api/rooms", json={"slug": "hideout", "title": "Hideout", "private": True}
    )
    assert created.status_code == 201, created.text
    added = await owner_http.post("/api/rooms/hideout/members", json={"username": "bob"})
    assert added.status_code == 204, added.text
    bob = await chat_socket(two, bob_http)
    await bob.subscribe("hideout")
    await bob.send({"type": "send", "room": "hideout", "body": "hi", "client_id": "b1"})
    await bob.next("ack")  # bob's yes for hideout is now cached on node 2

    removed = await owner_http.delete("/api/rooms/hideout/members/bob")
    assert removed.status_code == 204, removed.text
    async with asyncio.timeout(REMOVAL_WITHIN_S):
        assert (await bob.next("error"))["code"] == "forbidden"
        assert await bob.next("unsubscribed") == {"type": "unsubscribed", "room": "hideout"}
    await bob.send({"type": "send", "room": "hideout", "body": "still?", "client_id": "b2"})
    refused = await bob.next("error", timeout=10)
    assert (refused["code"], refused["client_id"]) == ("room_not_found", "b2")
