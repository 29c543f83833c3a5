"""A send whose outcome is unknown, over one connection (issue 9, hole 7): the client is
told `unknown_outcome` (not `unavailable`, which says "not taken"), its later sends are
not appended before it, and its resend with the same client_id restores the order."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from chatroom import redis_keys
from chatroom.domain.events import Author, decode_event
from chatroom.domain.stream_ids import StreamId
from chatroom.streams.writer import StreamWriter
from conftest import Backend, HubFactory
from fake_transport import send
from redis_proxy import RedisProxy

ALICE = Author(1, "alice", "Alice")


@pytest.fixture
async def proxy(backend: Backend) -> AsyncIterator[RedisProxy]:
    async with RedisProxy(backend.redis_url) as running:
        yield running


async def test_a_lost_reply_is_unknown_and_later_sends_wait_for_the_resend(
    make_hub: HubFactory, redis: Redis, proxy: RedisProxy
) -> None:
    # Gives up on a reply after 1 s: after the outage the writer tries the resend once,
    # so a reply late by a loaded machine's stall must not count as lost (0.2 s did).
    impatient = Redis.from_url(proxy.url, socket_timeout=1.0, retry=Retry(NoBackoff(), 0))
    node = await make_hub(
        make_writer=lambda _redis: StreamWriter(impatient, client_id_ttl_s=3600, retry_s=0.3)
    )
    alice = node.connect(ALICE)
    await send(alice, "warm-up", "w")
    proxy.black_hole = True  # the append goes out; no reply ever comes back
    alice.push({"type": "send", "room": "lobby", "body": "first", "client_id": "m1"})
    unknown = await alice.next("error", timeout=15)
    assert unknown["code"] == "unknown_outcome" and unknown["client_id"] == "m1"
    proxy.black_hole = False
    # Redis answers again; a later send must still not pass the one of unknown outcome.
    alice.push({"type": "send", "room": "lobby", "body": "second", "client_id": "m2"})
    held = await alice.next("error", timeout=15)
    assert held["code"] == "unavailable" and held["client_id"] == "m2"
    first = await send(alice, "first", "m1")  # the resend, same client_id
    second = await send(alice, "second", "m2")
    assert StreamId.parse(first) < StreamId.parse(second)
    entries = await redis.xrange(redis_keys.room_stream("lobby"))
    assert [decode_event("lobby", f).client_id for _, f in entries] == ["w", "m1", "m2"]
    await impatient.aclose()
