"""Presence in Redis: one join and one leave per user, heartbeats, and the sweep."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from chatroom.domain.events import Author
from chatroom.hub.presence import Presence, PresenceBoard, online_counts, online_users

ALICE = Author(1, "alice", "Alice")
BOB = Author(2, "bob", "Bob")


async def test_a_user_joins_with_the_first_connection_and_leaves_with_the_last(
    redis: Redis,
) -> None:
    node_one, node_two = PresenceBoard(redis, 60_000), PresenceBoard(redis, 60_000)
    assert await node_one.join(Presence("lobby", ALICE, "tab-1"))
    assert not await node_two.join(Presence("lobby", ALICE, "tab-2"))  # another node, no join
    assert await node_two.join(Presence("lobby", BOB, "tab-3"))
    assert await online_users(redis, "lobby") == [ALICE, BOB]
    assert await online_counts(redis, ["lobby", "empty"]) == {"lobby": 2, "empty": 0}
    assert not await node_one.leave(Presence("lobby", ALICE, "tab-1"))
    assert not await node_one.leave(Presence("lobby", ALICE, "tab-1"))  # twice: still one
    assert await node_two.leave(Presence("lobby", ALICE, "tab-2"))
    assert await online_users(redis, "lobby") == [BOB]


async def test_heartbeats_keep_users_online_and_the_sweep_reports_each_leave_once(
    redis: Redis,
) -> None:
    # Alice's node beats every 0.15 s against an expiry of 1 s: a late beat on a loaded
    # machine is no lapse (against 0.3 s, one 0.15 s late was). Bob's expires in 0.3 s.
    board = PresenceBoard(redis, 1000)
    await board.join(Presence("lobby", ALICE, "alive"))
    await PresenceBoard(redis, 300).join(Presence("lobby", BOB, "on-a-dead-node"))
    for _ in range(8):  # 1.2 s: longer than alice's expiry, so the beats kept her
        await asyncio.sleep(0.15)
        await board.refresh([Presence("lobby", ALICE, "alive")])
    assert await online_users(redis, "lobby") == [ALICE]  # bob expired...
    sweeps = await asyncio.gather(*(PresenceBoard(redis, 300).sweep("lobby") for _ in range(3)))
    assert sorted(len(left) for left in sweeps) == [0, 0, 1]  # ...and leaves exactly once
    assert [user for left in sweeps for user in left] == [BOB]
    # A connection that left is not brought back by a late heartbeat.
    assert await board.leave(Presence("lobby", ALICE, "alive"))
    await board.refresh([Presence("lobby", ALICE, "alive")])
    assert await online_users(redis, "lobby") == []
