"""The stream writer when a batch fails: retried in order, unknown outcomes named, later
sends of the same connection held back (issue 9, hole 7)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from chatroom import redis_keys
from chatroom.domain.events import Author, MessageEvent
from chatroom.streams.writer import Appended, HeldBack, OutcomeUnknown
from conftest import Backend, MakeWriter
from redis_proxy import RedisProxy

ALICE = Author(1, "alice", "Alice")
BOB = Author(2, "bob", "Bob")


@pytest.fixture
async def proxy(backend: Backend) -> AsyncIterator[RedisProxy]:
    async with RedisProxy(backend.redis_url) as running:
        yield running


# Short for a test, long against a loaded machine's stalls: after an outage the writer
# tries a failing send once (it knows Redis was down), so a reply late by a stall longer
# than this made the first send after the heal "unknown" (with 0.2 s, a 0.3 s hiccup did).
IMPATIENT_S = 1.0


def impatient(url: str) -> Redis:
    """A client through the proxy that gives up on a reply after IMPATIENT_S, without
    retries of its own (as the app node's writer client)."""
    return Redis.from_url(
        url,
        socket_timeout=IMPATIENT_S,
        socket_connect_timeout=IMPATIENT_S,
        retry=Retry(NoBackoff(), 0),
    )


def message(author: Author, client_id: str) -> MessageEvent:
    return MessageEvent("lobby", author, f"body of {client_id}", client_id)


async def stream_client_ids(redis: Redis) -> list[str]:
    entries = await redis.xrange(redis_keys.room_stream("lobby"))
    return [
        fields[b"event"].decode().split('"client_id":"')[1].split('"')[0] for _, fields in entries
    ]


async def test_a_failed_batch_is_retried_before_any_later_send(
    redis: Redis, proxy: RedisProxy, stream_writer: MakeWriter
) -> None:
    # Before: the first send failed at once ("unavailable"), the second went through, and
    # the client's resend of the first landed after it.
    client = impatient(proxy.url)
    writer = stream_writer(client, retry_s=10.0)
    await writer.append(message(ALICE, "warm-up"))  # script loaded, connection open
    proxy.black_hole = True
    first = asyncio.create_task(writer.append(message(ALICE, "m1")))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(writer.append(message(ALICE, "m2")))
    await asyncio.sleep(IMPATIENT_S + 0.5)  # m1's batch timed out and is being retried
    assert not first.done() and not second.done()
    proxy.black_hole = False
    appended = await asyncio.gather(first, second)
    assert all(isinstance(a, Appended) for a in appended)
    assert appended[0].id < appended[1].id
    assert await stream_client_ids(redis) == ["warm-up", "m1", "m2"]
    await client.aclose()


async def test_an_unknown_outcome_holds_back_the_connections_later_sends(
    redis: Redis, proxy: RedisProxy, stream_writer: MakeWriter
) -> None:
    client = impatient(proxy.url)
    writer = stream_writer(client, retry_s=0.5)
    await writer.append(message(ALICE, "warm-up"), order="alice-socket")
    proxy.black_hole = True
    with pytest.raises(OutcomeUnknown):
        await writer.append(message(ALICE, "m1"), order="alice-socket")
    proxy.black_hole = False
    # Redis answers again, but m1 may be stored or not: alice's next send must not pass it.
    with pytest.raises(HeldBack):
        await writer.append(message(ALICE, "m2"), order="alice-socket")
    # Another connection is not held back.
    await writer.append(message(BOB, "b1"), order="bob-socket")
    # The resend of m1 goes through (same client_id: stored once), then alice's next.
    await writer.append(message(ALICE, "m1"), order="alice-socket")
    await writer.append(message(ALICE, "m2"), order="alice-socket")
    ids = await stream_client_ids(redis)
    assert ids.count("m1") == 1 and ids.index("m1") < ids.index("m2")
    await client.aclose()


async def test_a_forgotten_connection_holds_nothing_back(
    proxy: RedisProxy, stream_writer: MakeWriter
) -> None:
    client = impatient(proxy.url)
    writer = stream_writer(client, retry_s=0.3)
    await writer.append(message(ALICE, "warm-up"), order="socket")
    proxy.black_hole = True
    with pytest.raises(OutcomeUnknown):
        await writer.append(message(ALICE, "m1"), order="socket")
    proxy.black_hole = False
    writer.forget("socket")  # the socket closed: a new one starts clean
    await writer.append(message(ALICE, "m2"), order="socket")
    await client.aclose()


async def test_nothing_sent_is_not_taken_rather_than_unknown(stream_writer: MakeWriter) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", retry=Retry(NoBackoff(), 0))
    writer = stream_writer(dead, retry_s=0.3)
    with pytest.raises(RedisConnectionError) as refused:
        await writer.append(message(ALICE, "c1"), order="socket")
    assert not isinstance(refused.value, OutcomeUnknown)
    # Not unknown, so nothing is held back behind it.
    with pytest.raises(RedisConnectionError) as again:
        await writer.append(message(ALICE, "c2"), order="socket")
    assert not isinstance(again.value, HeldBack)
    await dead.aclose()
