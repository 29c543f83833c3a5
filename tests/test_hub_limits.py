"""The per-user send bucket (pure, with a fake clock) and the cross-node connection count."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from chatroom.hub.limits import ConnectionLimit, SendLimiter, TokenBucket
from waiting import wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_the_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, tokens=3.0, updated=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == 0.5  # one token every half second
    assert bucket.take(0.25) == 0.25
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0  # a long pause saves up at most the burst
    assert bucket.tokens == 2.0


def test_the_limiter_keeps_one_bucket_per_user() -> None:
    clock = Clock()
    limiter = SendLimiter(rate=10.0, burst=2, clock=clock)
    assert [limiter.retry_after_ms(1) for _ in range(2)] == [0, 0]
    assert limiter.retry_after_ms(1) == 100
    assert limiter.retry_after_ms(2) == 0  # another user has their own bucket
    clock.now += 0.11
    assert limiter.retry_after_ms(1) == 0


def test_a_bucket_is_forgotten_only_once_it_has_refilled() -> None:
    clock = Clock()
    limiter = SendLimiter(rate=2.0, burst=4, clock=clock)
    assert [limiter.retry_after_ms(1) for _ in range(5)] == [0, 0, 0, 0, 500]
    assert limiter.retry_after_ms(2) == 0
    clock.now += 1.0
    limiter.forget_full()  # user 2 is full again; user 1 has 2 of 4 tokens
    assert len(limiter) == 1
    assert [limiter.retry_after_ms(1) for _ in range(3)] == [0, 0, 500]  # no fresh burst
    clock.now += 2.0
    limiter.forget_full()
    assert len(limiter) == 0  # idle senders cost no memory
    assert [limiter.retry_after_ms(1) for _ in range(5)] == [0, 0, 0, 0, 500]


async def test_connections_are_counted_across_nodes_and_expire(redis: Redis) -> None:
    node_one = ConnectionLimit(redis, maximum=2, expiry_ms=60_000)
    node_two = ConnectionLimit(redis, maximum=2, expiry_ms=60_000)
    assert await node_one.admit(7, "a")
    assert await node_two.admit(7, "b")
    assert not await node_one.admit(7, "c")
    assert await node_one.admit(8, "d")  # per user
    await node_two.release(7, "b")
    assert await node_one.admit(7, "c")
    # A dead node's connections stop counting once their heartbeat expires;
    # a live node's heartbeat keeps its own counted.
    # An expiry of 1 s against beats every 0.15 s: a late beat on a loaded machine is
    # no lapse (against 0.3 s, one 0.15 s late was).
    short = ConnectionLimit(redis, maximum=1, expiry_ms=1000)
    assert await short.admit(9, "dead")
    assert not await short.admit(9, "new")
    await wait_until(lambda: short.admit(9, "new"), 10, what="the dead one expired")
    for _ in range(8):  # 1.2 s: longer than the expiry, so the beats kept it
        await asyncio.sleep(0.15)
        await short.refresh([(9, "new")])
    assert not await short.admit(9, "another")
