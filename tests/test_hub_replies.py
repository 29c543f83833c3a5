"""Pipelined sends: several appends of one connection in flight, replies in arrival order.

The first tests drive `Replies` alone (a connection on a fake transport, replies made by
futures the test resolves); the last ones send bursts through a hub on real Redis and SQL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from chatroom import redis_keys
from chatroom.domain.events import Author, StreamEvent, decode_event
from chatroom.domain.frames import CloseCode
from chatroom.hub.connection import Connection
from chatroom.hub.hub import Hub
from chatroom.hub.replies import SEND_WINDOW, Replies
from chatroom.streams.writer import Appended, StreamWriter
from conftest import HubFactory
from fake_transport import FakeTransport

ALICE = Author(1, "alice", "Alice")


async def _reply(made: asyncio.Future[str]) -> str:
    return await made


async def _frames(transport: FakeTransport, count: int) -> list[dict[str, Any]]:
    return [await transport.next() for _ in range(count)]


async def test_replies_go_out_in_arrival_order_whenever_their_sends_finish() -> None:
    transport = FakeTransport()
    connection = Connection(transport, ALICE, queue_max=100)
    running = asyncio.create_task(connection.run(lambda _frame: asyncio.sleep(0)))
    replies = Replies(connection)
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    replies.follow(asyncio.create_task(_reply(first)))
    replies.answer('{"type":"error","client_id":"b"}')  # ready at once, but behind "a"
    replies.follow(asyncio.create_task(_reply(second)))
    assert replies.waiting == 3
    second.set_result('{"type":"ack","client_id":"c"}')
    await asyncio.sleep(0.05)
    assert transport.sent == []  # "a" is still in flight: nothing may pass it
    first.set_result('{"type":"ack","client_id":"a"}')
    assert [f["client_id"] for f in await _frames(transport, 3)] == ["a", "b", "c"]
    assert replies.waiting == 0
    replies.answer('{"type":"pong","client_id":"d"}')  # nothing in flight: straight out
    assert (await transport.next())["client_id"] == "d"
    transport.leave()
    await asyncio.wait_for(running, 5)


async def test_a_full_window_holds_the_reader_until_the_oldest_reply_is_out() -> None:
    connection = Connection(FakeTransport(), ALICE, queue_max=100)
    replies = Replies(connection, window=3)
    made = [asyncio.get_running_loop().create_future() for _ in range(3)]
    for future in made:
        await replies.room_for_one()
        replies.follow(asyncio.create_task(_reply(future)))
    reader = asyncio.create_task(replies.room_for_one())
    await asyncio.sleep(0.05)
    assert not reader.done()
    made[1].set_result("{}")  # not the oldest: the window stays full
    await asyncio.sleep(0.05)
    assert not reader.done()
    made[0].set_result("{}")
    await asyncio.wait_for(reader, 5)
    assert replies.waiting == 1
    made[2].set_result("{}")
    await asyncio.wait_for(replies.drained(), 5)


async def test_a_send_that_breaks_unexpectedly_closes_the_connection_with_1011() -> None:
    transport = FakeTransport()
    connection = Connection(transport, ALICE, queue_max=100)
    running = asyncio.create_task(connection.run(lambda _frame: asyncio.sleep(0)))
    replies = Replies(connection)
    broken: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    broken.set_exception(ValueError("a bug"))
    replies.follow(asyncio.create_task(_reply(broken)))
    code, _ = await transport.wait_closed()
    assert code == CloseCode.INTERNAL_ERROR
    await asyncio.wait_for(running, 5)


async def test_settle_lets_sends_finish_and_cancels_what_overstays() -> None:
    replies = Replies(Connection(FakeTransport(), ALICE, queue_max=100))
    loop = asyncio.get_running_loop()
    quick, stuck = loop.create_future(), loop.create_future()
    quick_task = asyncio.create_task(_reply(quick))
    stuck_task = asyncio.create_task(_reply(stuck))
    replies.follow(quick_task)
    replies.follow(stuck_task)
    loop.call_later(0.02, quick.set_result, "{}")
    await replies.settle(within_s=0.2)
    assert quick_task.result() == "{}"
    assert stuck_task.cancelled()


# Through a hub on real Redis and SQL.


class CountingWriter(StreamWriter):
    """A stream writer that counts how many appends wait for Redis at once."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis, client_id_ttl_s=3600)
        self.in_flight = 0
        self.most_in_flight = 0

    def submit(
        self, event: StreamEvent, *, order: Hashable | None = None
    ) -> asyncio.Future[Appended]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        appended = super().submit(event, order=order)
        appended.add_done_callback(self._done)
        return appended

    def _done(self, _appended: asyncio.Future[Appended]) -> None:
        self.in_flight -= 1


@dataclass
class Node:
    hub: Hub
    writer: CountingWriter
    alice: FakeTransport  # alice's socket, served by the hub


@pytest.fixture
async def node(make_hub: HubFactory) -> Node:
    built = await make_hub(
        make_writer=CountingWriter,
        send_rate_per_s=1000,  # the bursts here are about the pipeline, not the rate limit
        send_burst=1000,
        frame_rate_per_s=1000,
        frame_burst=1000,
    )
    assert isinstance(built.writer, CountingWriter)
    return Node(built.hub, built.writer, built.connect(ALICE))


def _send(client_id: str, body: str, room: str = "lobby") -> dict[str, str]:
    return {"type": "send", "room": room, "body": body, "client_id": client_id}


async def _stream(redis: Redis) -> list[tuple[str, str]]:
    entries = cast(
        list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(redis_keys.room_stream("lobby"))
    )
    events = [decode_event("lobby", fields) for _, fields in entries]
    return [(event.client_id, event.body) for event in events]


async def test_a_burst_of_sends_is_appended_together_and_acked_in_order(
    node: Node, redis: Redis
) -> None:
    hub, writer, transport = node.hub, node.writer, node.alice
    count = SEND_WINDOW + 8  # more than one window: the reader waits for room, then goes on
    for i in range(count):
        transport.push(_send(f"burst-{i}", f"message {i}"))
    transport.push({"type": "ping"})  # its reply must not pass the acks
    replies = await _frames(transport, count + 1)
    assert [f.get("client_id") for f in replies[:count]] == [f"burst-{i}" for i in range(count)]
    assert {f["type"] for f in replies[:count]} == {"ack"}
    assert replies[-1] == {"type": "pong"}
    ids = [f["id"] for f in replies[:count]]
    assert len(set(ids)) == count
    # Several appends of this one connection were waiting for Redis at the same time.
    assert writer.most_in_flight > 1
    assert writer.most_in_flight <= SEND_WINDOW
    # Stored once each, in the order sent; a resend of the whole burst stores nothing.
    expected = [(f"burst-{i}", f"message {i}") for i in range(count)]
    assert await _stream(redis) == expected
    for i in range(count):
        transport.push(_send(f"burst-{i}", f"message {i}"))
    again = await _frames(transport, count)
    assert [f["id"] for f in again] == ids
    assert await _stream(redis) == expected
    assert hub.stats.messages_in == 2 * count


async def test_a_failing_send_in_the_window_gets_its_error_and_the_others_their_acks(
    node: Node, redis: Redis
) -> None:
    transport = node.alice
    # The append of "burst-5" fails in Redis (its client_id key has the wrong type): a
    # real error from the middle of one pipeline.
    await redis.hset(redis_keys.sent_client_id("lobby", ALICE.id, "burst-5"), "x", "y")
    for i in range(10):
        transport.push(_send(f"burst-{i}", f"message {i}"))
    transport.push(_send("elsewhere", "no such room", room="nowhere"))
    transport.push(_send("burst-10", "message 10"))
    replies = await _frames(transport, 12)
    assert [f["client_id"] for f in replies] == [
        *(f"burst-{i}" for i in range(10)),
        "elsewhere",
        "burst-10",
    ]
    kinds = [(f["type"], f.get("code")) for f in replies]
    assert kinds[5] == ("error", "unavailable")
    assert kinds[10] == ("error", "room_not_found")
    assert [k for i, k in enumerate(kinds) if i not in (5, 10)] == [("ack", None)] * 10
    stored = [client_id for client_id, _ in await _stream(redis)]
    assert stored == [f"burst-{i}" for i in range(11) if i != 5]
    # The connection is still usable.
    transport.push({"type": "ping"})
    assert await transport.next() == {"type": "pong"}
    assert json.loads(transport.sent[-1]) == {"type": "pong"}
