"""The hub on real Redis and SQL, driven through fake transports (no HTTP server)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.domain.events import Author
from chatroom.domain.frames import CloseCode
from chatroom.domain.stream_ids import StreamId
from chatroom.hub.presence import Presence, online_counts, online_users
from chatroom.hub.subscription import RoomRef
from chatroom.store.counts import room_ids
from chatroom.store.tables import rooms
from conftest import HubFactory, HubNode
from fake_transport import messages, send, subscribe

ALICE = Author(1, "alice", "Alice")
BOB = Author(2, "bob", "Bob")
CAROL = Author(3, "carol", "Carol")
SECRET_MEMBERS = {ALICE.id}


@pytest.fixture
async def room_refs(engine: AsyncEngine) -> dict[str, RoomRef]:
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(rooms).values(
                slug="secret", title="Secret", is_private=True, created_at=sa.func.now()
            )
        )
    ids = await room_ids(engine)
    return {
        "lobby": RoomRef(ids["lobby"], "lobby", False),
        "secret": RoomRef(ids["secret"], "secret", True),
    }


@pytest.fixture
def make_node(make_hub: HubFactory, room_refs: dict[str, RoomRef]) -> HubFactory:
    """Hubs whose users may use the lobby, and the secret room if in SECRET_MEMBERS."""

    async def access(user: Author, slug: str) -> RoomRef | None:
        room = room_refs.get(slug)
        if room is None or (room.private and user.id not in SECRET_MEMBERS):
            return None
        return room

    async def make(**options: Any) -> HubNode:
        return await make_hub(access, **{"presence_expiry_s": 2, **options})

    return make


async def test_send_acks_and_fans_out_to_every_subscriber_in_order(make_node: HubFactory) -> None:
    node = await make_node()
    alice, bob = node.connect(ALICE), node.connect(BOB)
    first = await subscribe(alice)
    assert first["online"] == [ALICE.as_json()]
    assert (await subscribe(bob))["online"] == [ALICE.as_json(), BOB.as_json()]
    ids = [await send(alice, f"hello {i}", f"a-{i}") for i in range(5)]
    for transport in (alice, bob):
        got = await messages(transport, 5)
        assert [m["id"] for m in got] == ids
        assert got[0]["user"] == ALICE.as_json() and got[0]["body"] == "hello 0"


async def test_presence_joins_and_leaves_once_per_user_however_many_tabs(
    make_node: HubFactory, redis: Redis
) -> None:
    node = await make_node()
    carol = node.connect(CAROL)
    await subscribe(carol)
    tab1, tab2 = node.connect(ALICE), node.connect(ALICE)
    await subscribe(tab1)
    await subscribe(tab2)
    assert await carol.next("presence") == {
        "type": "presence",
        "room": "lobby",
        "user": ALICE.as_json(),
        "state": "join",
    }
    assert [u.username for u in await online_users(redis, "lobby")] == ["alice", "carol"]
    assert await online_counts(redis, ["lobby", "secret"]) == {"lobby": 2, "secret": 0}
    tab1.leave()
    tab2.push({"type": "ping"})
    assert (await tab2.next("pong")) == {"type": "pong"}
    tab2.leave()
    leave = await carol.next("presence")
    assert leave["state"] == "leave" and leave["user"]["username"] == "alice"
    assert [u.username for u in await online_users(redis, "lobby")] == ["carol"]
    # Exactly one join and one leave reached carol.
    carol.push({"type": "ping"})
    await carol.next("pong")
    presence = [f for f in carol.sent if '"presence"' in f]
    assert len(presence) == 2


async def test_a_dead_nodes_users_leave_after_their_heartbeat_expires(
    make_node: HubFactory,
) -> None:
    node = await make_node(presence_expiry_s=2)
    carol = node.connect(CAROL)
    await subscribe(carol)
    # A node that joined bob, then died: no heartbeat, no leave.
    assert await node.hub.presence.join(Presence("lobby", BOB, "dead-node-connection"))
    # Expected after about 2.5 s (the expiry, then a sweep); the bound is for a slow machine.
    online = await carol.next("presence", timeout=10)
    assert online["state"] == "leave" and online["user"]["username"] == "bob"


async def test_presence_and_messages_cross_nodes_in_the_same_order(
    make_node: HubFactory,
) -> None:
    one, two = await make_node(), await make_node()
    alice, bob = one.connect(ALICE), two.connect(BOB)
    await subscribe(alice)
    await subscribe(bob)
    assert (await alice.next("presence"))["user"]["username"] == "bob"
    tasks = [
        asyncio.create_task(send(t, f"{n} {i}", f"{n}-{i}"))
        for i in range(20)
        for n, t in (("a", alice), ("b", bob))
    ]
    await asyncio.gather(*tasks)
    seen_one = [m["id"] for m in await messages(alice, 40)]
    seen_two = [m["id"] for m in await messages(bob, 40)]
    assert seen_one == seen_two == sorted(seen_one, key=StreamId.parse)


async def test_a_reconnect_does_not_refill_the_send_bucket(make_node: HubFactory) -> None:
    # One token every 20 s: the test's own steps, however slow the machine, earn none.
    node = await make_node(send_rate_per_s=0.05, send_burst=3)
    alice = node.connect(ALICE)
    for i in range(3):
        await send(alice, "ok", f"ok-{i}")
    alice.leave()
    await node.serving[-1]  # that socket is gone, and the hub is done with it
    again = node.connect(ALICE)
    again.push({"type": "send", "room": "lobby", "body": "a fresh burst?", "client_id": "late"})
    refused = await again.next("error")
    assert refused["code"] == "rate_limited" and refused["client_id"] == "late"
    assert 10_000 < refused["retry_after_ms"] <= 20_000


async def test_a_user_over_the_connection_limit_is_closed(make_node: HubFactory) -> None:
    node = await make_node(max_connections_per_user=2)
    first, second = node.connect(ALICE), node.connect(ALICE)
    first.push({"type": "ping"})
    second.push({"type": "ping"})
    await first.next("pong")
    await second.next("pong")
    third = node.connect(ALICE)
    code, _ = await third.wait_closed()
    assert code == CloseCode.TOO_MANY_CONNECTIONS
    first.leave()
    # Its slot is free once the hub is done with it, not after some fixed time.
    await asyncio.wait_for(node.serving[0], 10)
    fourth = node.connect(ALICE)
    fourth.push({"type": "ping"})
    assert await fourth.next("pong") == {"type": "pong"}


async def test_a_frame_for_the_user_reaches_a_socket_whose_count_is_being_taken(
    make_node: HubFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upgrade is answered before the node counts the socket in Redis (a round trip):
    a frame for the user sent meanwhile (a room event, a read mark, a mute, a sign-out)
    reaches the new socket too, as it reaches the user's others."""
    node = await make_node()
    served = node.connect(ALICE)
    served.push({"type": "ping"})
    await served.next("pong")
    counting, counted = asyncio.Event(), asyncio.Event()
    admit = node.hub._limit.admit

    async def slow_admit(user_id: int, connection_id: str) -> bool:
        counting.set()
        await counted.wait()
        return await admit(user_id, connection_id)

    monkeypatch.setattr(node.hub._limit, "admit", slow_admit)
    new = node.connect(ALICE)
    await counting.wait()
    room_event = {"type": "room", "event": "joined", "room": {"slug": "lobby"}}
    await node.hub.tell_user(ALICE.id, json.dumps(room_event))
    assert await served.next("room") == room_event  # over pub/sub: it has been handed out
    counted.set()
    assert await new.next("room") == room_event
    new.push({"type": "ping"})
    assert await new.next("pong") == {"type": "pong"}


async def test_private_rooms_are_closed_to_non_members(make_node: HubFactory) -> None:
    node = await make_node()
    alice, bob = node.connect(ALICE), node.connect(BOB)
    await subscribe(alice, room="secret")
    for frame in (
        {"type": "subscribe", "room": "secret"},
        {"type": "send", "room": "secret", "body": "hi", "client_id": "b-1"},
        {"type": "typing", "room": "secret"},
    ):
        bob.push(frame)
        refused = await bob.next("error")
        assert refused["code"] == "room_not_found"
    await send(alice, "members only", "a-1", room="secret")
    assert (await alice.next("message"))["body"] == "members only"
    bob.push({"type": "ping"})
    await bob.next("pong")
    assert {json.loads(f)["type"] for f in bob.sent} == {"error", "pong"}


async def test_a_slow_subscriber_is_closed_and_the_others_keep_going(
    make_node: HubFactory,
) -> None:
    node = await make_node(
        outbound_queue_max=10,
        send_rate_per_s=1000,
        send_burst=1000,
        frame_rate_per_s=1000,
        frame_burst=1000,
    )
    slow, alice = node.connect(CAROL), node.connect(ALICE)
    await subscribe(slow)
    await subscribe(alice)
    slow.reading.clear()
    ids = [await send(alice, f"m {i}", f"a-{i}") for i in range(30)]
    code, _ = await slow.wait_closed()
    assert code == CloseCode.SLOW_CONSUMER
    assert [m["id"] for m in await messages(alice, 30)] == ids
    for _ in range(100):
        if node.hub.stats.slow_consumers:
            break
        await asyncio.sleep(0.02)
    assert node.hub.stats.slow_consumers == 1


async def test_a_member_removed_from_a_private_room_loses_the_subscription(
    make_node: HubFactory,
) -> None:
    node = await make_node(presence_expiry_s=2)  # a heartbeat every half second
    alice = node.connect(ALICE)
    await subscribe(alice, room="secret")
    SECRET_MEMBERS.discard(ALICE.id)
    try:
        refused = await alice.next("error")
        assert refused["code"] == "forbidden"
        assert await alice.next("unsubscribed") == {"type": "unsubscribed", "room": "secret"}
    finally:
        SECRET_MEMBERS.add(ALICE.id)


async def test_a_removed_member_loses_the_room_on_every_node_at_once(
    make_node: HubFactory, redis: Redis
) -> None:
    # A heartbeat every 15 s, the first 15 s after the start: what ends the subscription
    # within the 10 s bounds here is the signal, not the recheck.
    one, two = await make_node(presence_expiry_s=60), await make_node(presence_expiry_s=60)
    alice, alice_tab, bob = two.connect(ALICE), one.connect(ALICE), two.connect(BOB)
    SECRET_MEMBERS.add(BOB.id)
    try:
        await subscribe(alice, room="secret")
        await subscribe(bob, room="secret")
        await send(alice_tab, "still in", "t-1", room="secret")  # that tab has a cached yes
        SECRET_MEMBERS.discard(ALICE.id)  # what the owner's DELETE did in SQL
        await one.hub.access_lost("secret", ALICE.id)
        async with asyncio.timeout(10):
            refused = await alice.next("error")
            assert refused["code"] == "forbidden"
            assert await alice.next("unsubscribed") == {"type": "unsubscribed", "room": "secret"}
            leave = await bob.next("presence")
        assert (leave["user"]["username"], leave["state"]) == ("alice", "leave")
        # The other tab's cached yes is gone: its next send asks again and is refused.
        alice_tab.push({"type": "send", "room": "secret", "body": "x", "client_id": "t-2"})
        assert (await alice_tab.next("error", timeout=10))["code"] == "room_not_found"
        # Live messages of the room no longer reach alice.
        after = await send(bob, "alice is out", "b-1", room="secret")
        assert [m["id"] for m in await messages(bob, 2)][-1] == after
        alice.push({"type": "ping"})
        await alice.next("pong")
        assert not [f for f in alice.sent if '"alice is out"' in f]
    finally:
        SECRET_MEMBERS.add(ALICE.id)
        SECRET_MEMBERS.discard(BOB.id)


async def test_stopping_the_node_closes_its_sockets_with_1001(make_node: HubFactory) -> None:
    node = await make_node()
    alice = node.connect(ALICE)
    await subscribe(alice)
    await node.hub.stop()
    code, _ = await alice.wait_closed()
    assert code == CloseCode.GOING_AWAY
