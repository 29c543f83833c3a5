"""What one socket may ask of a node over /ws (hub/session.py, hub/limits.py,
hub/typing.py), on real Redis and SQL through fake transports: a token bucket over every
kind of frame, a cap on its subscriptions, and typing passed on once per user and room
across all of the user's sockets and nodes."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.domain.events import Author
from chatroom.hub.subscription import RoomRef
from chatroom.store.counts import room_ids
from conftest import HubFactory
from fake_transport import subscribe

ALICE = Author(1, "alice", "Alice")
BOB = Author(2, "bob", "Bob")
CAROL = Author(3, "carol", "Carol")


async def test_every_kind_of_frame_spends_the_connection_s_bucket(make_hub: HubFactory) -> None:
    # Refilling one token in 1,000 s: the burst is all a socket has in this test.
    node = await make_hub(frame_rate_per_s=0.001, frame_burst=6)
    alice = node.connect(ALICE)
    await subscribe(alice)  # costs 2
    for _ in range(4):
        alice.push({"type": "ping"})
        await alice.next("pong")
    for frame in (
        {"type": "ping"},
        {"type": "typing", "room": "lobby"},
        {"type": "subscribe", "room": "lobby"},
        {"type": "unsubscribe", "room": "lobby"},
        {"type": "send", "room": "lobby", "body": "hi", "client_id": "c-1"},
        {"type": "no such type"},
    ):
        alice.push(frame)
        refused = await alice.next("error")
        assert refused["code"] == "rate_limited", frame
        assert refused["retry_after_ms"] > 0
        assert refused.get("room") == frame.get("room")
        assert refused.get("client_id") == frame.get("client_id")
    assert not any('"pong"' in f for f in alice.sent[-6:])
    # The bucket is the socket's: another socket of the same user is served.
    other = node.connect(ALICE)
    other.push({"type": "ping"})
    assert await other.next("pong") == {"type": "pong"}


async def test_subscriptions_per_socket_are_capped(
    make_hub: HubFactory, engine: AsyncEngine
) -> None:
    lobby_id = (await room_ids(engine))["lobby"]

    async def any_room(_user: Author, slug: str) -> RoomRef | None:
        return RoomRef(lobby_id, slug, False)

    node = await make_hub(any_room, max_subscriptions_per_connection=2)
    alice = node.connect(ALICE)
    await subscribe(alice, "room-a")
    await subscribe(alice, "room-b")
    alice.push({"type": "subscribe", "room": "room-c"})
    refused = await alice.next("error")
    assert refused["code"] == "too_many_subscriptions" and refused["room"] == "room-c"
    await subscribe(alice, "room-a")  # again: no new subscription, allowed
    alice.push({"type": "unsubscribe", "room": "room-b"})
    await alice.next("unsubscribed")
    assert (await subscribe(alice, "room-c"))["room"] == "room-c"


async def test_typing_is_passed_on_once_per_user_and_room_across_sockets_and_nodes(
    make_hub: HubFactory,
) -> None:
    one, two = await make_hub(typing_interval_s=3600), await make_hub(typing_interval_s=3600)
    bob = one.connect(BOB)
    await subscribe(bob)
    alice_here, alice_there, carol = one.connect(ALICE), two.connect(ALICE), two.connect(CAROL)
    for transport in (alice_here, alice_there, carol):
        await subscribe(transport)
    alice_here.push({"type": "typing", "room": "lobby"})
    assert (await bob.next("typing"))["user"] == ALICE.as_json()
    alice_there.push({"type": "typing", "room": "lobby"})
    alice_there.push({"type": "ping"})
    await alice_there.next("pong")  # its typing frame was served before this
    # Carol's typing travels the same channel after Alice's second: once Bob has it,
    # he would have had Alice's second too.
    carol.push({"type": "typing", "room": "lobby"})
    assert (await bob.next("typing"))["user"] == CAROL.as_json()
    typists = [f for f in bob.sent if '"typing"' in f]
    assert len(typists) == 2
