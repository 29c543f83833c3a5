"""Edits, deletes, reactions and replies through the send path: authorised, acked with
their own stream ids, idempotent by client_id, and fanned out in stream order on two
nodes (real Redis and SQL on both backends)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from redis.asyncio import Redis

from chatroom import redis_keys
from chatroom.domain.events import Author, decode_event
from chatroom.domain.stream_ids import StreamId
from chatroom.hub.subscription import RoomRef
from chatroom.store.counts import room_ids
from conftest import HubFactory
from fake_transport import FakeTransport, send, subscribe
from test_archiver_support import Archivers

ALICE = Author(1, "alice", "Alice")
BOB = Author(2, "bob", "Bob")
MOD = Author(3, "mod", "Moderator")  # the room's owner


@pytest.fixture
def make_node(make_hub: HubFactory, engine: Any) -> HubFactory:
    async def make(**options: Any) -> Any:
        lobby_id = (await room_ids(engine))["lobby"]

        async def access(user: Author, slug: str) -> RoomRef | None:
            if slug != "lobby":
                return None
            return RoomRef(lobby_id, "lobby", False, moderator=user.id == MOD.id)

        return await make_hub(access, **options)

    return make


async def change(transport: FakeTransport, **frame: Any) -> dict[str, Any]:
    """Push a change frame; its ack or error (by client_id)."""
    transport.push({"room": "lobby", **frame})
    async with asyncio.timeout(5):
        while True:
            for text in transport.sent:
                reply: dict[str, Any] = json.loads(text)
                if (
                    reply["type"] in ("ack", "error")
                    and reply.get("client_id") == frame["client_id"]
                ):
                    return reply
            await asyncio.sleep(0.01)


async def test_every_change_is_acked_and_fanned_out_in_order_on_two_nodes(
    make_node: HubFactory, redis: Redis
) -> None:
    one, two = await make_node(), await make_node()
    alice, bob, mod = one.connect(ALICE), two.connect(BOB), two.connect(MOD)
    for transport in (alice, bob, mod):
        await subscribe(transport)
    first = await send(alice, "hello", "m1")
    bobs = await send(bob, "hi alice", "m2")
    steps = [
        (alice, {"type": "edit", "client_id": "e1", "target": first, "body": "hello, world"}),
        (bob, {"type": "react", "client_id": "r1", "target": first, "emoji": "👍"}),
        (alice, {"type": "react", "client_id": "r2", "target": first, "emoji": "👍"}),
        (bob, {"type": "unreact", "client_id": "u1", "target": first, "emoji": "👍"}),
        (bob, {"type": "send", "client_id": "m3", "body": "quoting", "reply_to": first}),
        (mod, {"type": "delete", "client_id": "d1", "target": bobs, "reason": "off topic"}),
        (alice, {"type": "delete", "client_id": "d2", "target": first}),
    ]
    ids = []
    for transport, frame in steps:
        reply = await change(transport, **frame)
        assert reply["type"] == "ack", reply
        ids.append(reply["id"])
    assert ids == sorted(ids, key=StreamId.parse)
    # Every socket on either node gets everything in stream order, each its own id.
    for transport in (alice, bob, mod):
        got = [await transport.next(kind) for kind in ("message", "message")]
        got += [await transport.next(step[1]["type"].replace("send", "message")) for step in steps]
        assert [f["id"] for f in got] == [first, bobs, *ids]
    # The shapes (checked on bob's node, two).
    fresh = two.connect(BOB)
    await subscribe(fresh, since=first)
    try:
        replayed = [await fresh.next() for _ in range(len(steps) + 1)]
    except TimeoutError:
        raise AssertionError(fresh.sent) from None
    assert [f["type"] for f in replayed] == [
        "message",
        "edit",
        "react",
        "react",
        "unreact",
        "message",
        "delete",
        "delete",
    ]
    edit, moderated, own = replayed[1], replayed[6], replayed[7]
    assert (edit["target"], edit["body"], edit["user"]) == (first, "hello, world", ALICE.as_json())
    assert (moderated["target"], moderated["moderated"]) == (bobs, True)
    assert "reason" not in moderated  # kept for admins, never in a frame
    assert (own["target"], own["moderated"]) == (first, False)
    assert replayed[5]["reply_to"] == first
    # The stream holds the reason.
    entries = await redis.xrange(redis_keys.room_stream("lobby"), min=ids[5], max=ids[5])
    stored = decode_event("lobby", entries[0][1])
    assert getattr(stored, "reason", None) == "off topic"


async def test_changes_are_authorised(make_node: HubFactory) -> None:
    node = await make_node()
    alice, bob = node.connect(ALICE), node.connect(BOB)
    await subscribe(alice)
    await subscribe(bob)
    first = await send(alice, "mine", "m1")
    refused = {
        "bob edits alice's": (bob, {"type": "edit", "target": first, "body": "hacked"}),
        "bob deletes alice's": (bob, {"type": "delete", "target": first}),
        "no such message": (alice, {"type": "edit", "target": "1-1", "body": "x"}),
        "reply to nothing": (alice, {"type": "send", "body": "x", "reply_to": "1-1"}),
        "bad target": (alice, {"type": "react", "target": "yesterday", "emoji": "👍"}),
        "not an emoji": (alice, {"type": "react", "target": first, "emoji": "lol"}),
        "empty edit": (alice, {"type": "edit", "target": first, "body": "  "}),
        "other room": (alice, {"type": "react", "room": "secret", "target": first, "emoji": "👍"}),
    }
    codes = {}
    for number, (name, (transport, frame)) in enumerate(refused.items()):
        reply = await change(transport, client_id=f"x{number}", **frame)
        codes[name] = reply.get("code")
    assert codes == {
        "bob edits alice's": "forbidden",
        "bob deletes alice's": "forbidden",
        "no such message": "message_not_found",
        "reply to nothing": "message_not_found",
        "bad target": "invalid_target",
        "not an emoji": "invalid_emoji",
        "empty edit": "empty_body",
        "other room": "room_not_found",
    }
    # A change's target must be a message, not another change.
    reacted = await change(alice, type="react", client_id="r1", target=first, emoji="👍")
    on_change = await change(alice, type="edit", client_id="e1", target=reacted["id"], body="x")
    assert on_change["code"] == "message_not_found"


async def test_a_resent_change_is_stored_once(make_node: HubFactory, redis: Redis) -> None:
    node = await make_node()
    alice = node.connect(ALICE)
    await subscribe(alice)
    first = await send(alice, "mine", "m1")
    frame = {"type": "edit", "client_id": "e1", "target": first, "body": "again"}
    once = await change(alice, **frame)
    twice = await change(alice, **frame)
    assert once["id"] == twice["id"]
    assert await redis.xlen(redis_keys.room_stream("lobby")) == 2


async def test_since_replays_archived_changes_from_sql_with_no_gap(
    make_node: HubFactory, redis: Redis, archivers: Archivers
) -> None:
    node = await make_node()
    alice, bob = node.connect(ALICE), node.connect(BOB)
    await subscribe(alice)
    await subscribe(bob)
    first = await send(alice, "one", "m1")
    second = await send(bob, "two", "m2")
    sent = [
        await change(alice, type="edit", client_id="e1", target=first, body="one, edited"),
        await change(bob, type="react", client_id="r1", target=first, emoji="🎉"),
        await change(alice, type="delete", client_id="d1", target=first),
    ]
    await archivers.new(consumer="c1").drain()
    # Trimmed: what follows is read from SQL (and the newest entries from the stream).
    assert await redis.xlen(redis_keys.room_stream("lobby")) < 5
    third = (await change(alice, type="send", client_id="m3", body="three"))["id"]
    for since, expected in [
        (first, [second, *(r["id"] for r in sent), third]),
        (sent[0]["id"], [*(r["id"] for r in sent[1:]), third]),  # a cursor at a change
    ]:
        fresh = node.connect(BOB)
        assert (await subscribe(fresh, since=since))["last_id"] == third
        got = [await fresh.next() for _ in expected]
        assert [f["id"] for f in got] == expected
        assert [f["type"] for f in got][-4:] == ["edit", "react", "delete", "message"][
            -len(expected) :
        ]
        assert not any(f["type"] == "resync" for f in got)
