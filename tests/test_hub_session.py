"""One connection's protocol (hub/session.py) on real Redis and SQL, through fake
transports: sends and their acks, subscribe with replay, typing, the room check and its
cache, and the subscriptions the server ends."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.domain.events import Author, MessageEvent, decode_event
from chatroom.domain.frames import CloseCode
from chatroom.domain.stream_ids import StreamId
from chatroom.history import History, Page
from chatroom.hub import session
from chatroom.hub.presence import online_users
from chatroom.hub.session import REPLAY_PAGE
from chatroom.hub.subscription import RoomRef
from chatroom.store.archive_writes import ArchivedMessage, upsert_messages
from chatroom.store.counts import room_ids
from chatroom.store.history_pages import ArchivedPages
from chatroom.streams.writer import StreamWriter
from conftest import HubFactory
from fake_transport import messages, send, subscribe

ALICE = Author(1, "alice", "Alice")
BOB = Author(2, "bob", "Bob")


@pytest.fixture
async def lobby(engine: AsyncEngine) -> RoomRef:
    return RoomRef((await room_ids(engine))["lobby"], "lobby", False)


async def append(redis: Redis, count: int, prefix: str = "m") -> list[StreamId]:
    writer = StreamWriter(redis, client_id_ttl_s=3600)
    try:
        results = await asyncio.gather(
            *(
                writer.append(MessageEvent("lobby", BOB, f"{prefix} {i}", f"{prefix}-{i}"))
                for i in range(count)
            )
        )
    finally:
        await writer.close()
    return [r.id for r in results]


async def archive_and_trim(redis: Redis, engine: AsyncEngine, room_id: int, upto: StreamId) -> None:
    """What the archiver does: copy into SQL (committed), then trim the stream."""
    key = redis_keys.room_stream("lobby")
    entries = await redis.xrange(key, min="-", max=str(upto))
    batch = []
    for entry_id, fields in entries:
        event = decode_event("lobby", fields)
        batch.append(
            ArchivedMessage(
                room_id, StreamId.parse(entry_id), event.author.id, event.client_id, event.body
            )
        )
    async with engine.begin() as conn:
        await upsert_messages(conn, batch)
    await redis.xtrim(key, minid=str(upto.next()), approximate=False)


async def test_a_resend_with_the_same_client_id_returns_the_first_id(
    make_hub: HubFactory, redis: Redis
) -> None:
    node = await make_hub()
    alice = node.connect(ALICE)
    first = await send(alice, "once", "same-id")
    assert await send(alice, "once again", "same-id") == first
    assert await redis.xlen(redis_keys.room_stream("lobby")) == 1


async def test_subscribe_since_replays_from_sql_and_stream_then_goes_live(
    make_hub: HubFactory, redis: Redis, engine: AsyncEngine, lobby: RoomRef
) -> None:
    ids = await append(redis, 300)
    await archive_and_trim(redis, engine, lobby.id, ids[149])
    node = await make_hub()
    alice = node.connect(ALICE)
    subscribed = await subscribe(alice, since=str(ids[49]))
    assert subscribed["last_id"] == str(ids[-1])
    replayed = await messages(alice, 250)
    assert [m["id"] for m in replayed] == [str(i) for i in ids[50:]]
    live = await send(alice, "after the replay", "live-1")
    assert (await alice.next("message"))["id"] == live


async def test_subscribe_since_while_messages_keep_coming_has_no_gap_or_duplicate(
    make_hub: HubFactory, redis: Redis
) -> None:
    first = await append(redis, 100, prefix="old")
    node = await make_hub(outbound_queue_max=50)
    alice = node.connect(ALICE)

    async def keep_sending() -> list[StreamId]:
        sent = []
        for i in range(10):
            sent += await append(redis, 30, prefix=f"new{i}")
            await asyncio.sleep(0.005)
        return sent

    sending = asyncio.create_task(keep_sending())
    await subscribe(alice, since=str(first[9]))
    later = await sending
    expected = [str(i) for i in first[10:] + sorted(later)]
    got = [m["id"] for m in await messages(alice, len(expected))]
    assert got == expected


async def test_resync_when_the_stream_was_lost(make_hub: HubFactory, redis: Redis) -> None:
    ids = await append(redis, 3)
    node = await make_hub()
    alice = node.connect(ALICE)
    # A since newer than anything Redis or SQL know.
    alice.push({"type": "subscribe", "room": "lobby", "since": f"{ids[-1].ms + 10_000}-0"})
    assert (await alice.next())["type"] == "subscribed"
    assert await alice.next() == {"type": "resync", "room": "lobby"}
    # Redis came back empty: the stream is missing while since is set.
    await redis.delete(redis_keys.room_stream("lobby"))
    bob = node.connect(BOB)
    bob.push({"type": "subscribe", "room": "lobby", "since": str(ids[0])})
    assert (await bob.next())["type"] == "subscribed"
    assert await bob.next() == {"type": "resync", "room": "lobby"}
    # Both stay subscribed, live.
    live = await send(bob, "after the loss", "b-1")
    assert (await alice.next("message"))["id"] == live


async def test_since_zero_on_an_empty_room_is_no_resync(make_hub: HubFactory) -> None:
    node = await make_hub()
    alice = node.connect(ALICE)
    subscribed = await subscribe(alice, since="0-0")
    assert subscribed["last_id"] == "0-0"
    live = await send(alice, "first ever", "a-1")
    assert (await alice.next("message"))["id"] == live
    assert not any('"resync"' in f for f in alice.sent)


async def test_typing_reaches_others_and_is_never_stored(
    make_hub: HubFactory, redis: Redis
) -> None:
    one, two = await make_hub(), await make_hub()
    alice, bob = one.connect(ALICE), two.connect(BOB)
    await subscribe(alice)
    await subscribe(bob)
    alice.push({"type": "typing", "room": "lobby"})
    assert await bob.next("typing") == {"type": "typing", "room": "lobby", "user": ALICE.as_json()}
    alice.push({"type": "ping"})
    await alice.next("pong")
    assert not any('"typing"' in f for f in alice.sent)  # not echoed to the typist
    assert await redis.exists(redis_keys.room_stream("lobby")) == 0


async def test_sends_over_the_rate_are_refused_with_retry_after(make_hub: HubFactory) -> None:
    # One token every 20 s: the three sends, however slow the machine, earn none back.
    node = await make_hub(send_rate_per_s=0.05, send_burst=3)
    alice = node.connect(ALICE)
    for i in range(3):
        await send(alice, "ok", f"ok-{i}")
    alice.push({"type": "send", "room": "lobby", "body": "one more", "client_id": "late"})
    refused = await alice.next("error")
    assert refused["code"] == "rate_limited" and refused["client_id"] == "late"
    assert 0 < refused["retry_after_ms"] <= 20_000


async def test_a_send_while_redis_is_down_is_unavailable(make_hub: HubFactory) -> None:
    node = await make_hub(writer_url="redis://127.0.0.1:1/0")
    alice = node.connect(ALICE)
    alice.push({"type": "send", "room": "lobby", "body": "lost?", "client_id": "x-1"})
    refused = await alice.next("error", timeout=15)
    assert refused["code"] == "unavailable" and refused["client_id"] == "x-1"
    alice.push({"type": "ping"})
    assert await alice.next("pong") == {"type": "pong"}


async def test_a_frame_over_the_limit_closes_with_1009(make_hub: HubFactory) -> None:
    node = await make_hub(frame_max_bytes=1024)
    alice = node.connect(ALICE)
    alice.push('{"type":"ping","pad":"' + "x" * 2000 + '"}')
    code, _ = await alice.wait_closed()
    assert code == CloseCode.MESSAGE_TOO_BIG


async def test_sends_reuse_a_recent_yes_from_the_room_check_and_a_subscribe_asks_again(
    make_hub: HubFactory, lobby: RoomRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "ACCESS_CACHE_S", 3600.0)  # no yes runs out in this test
    asked: Counter[str] = Counter()

    async def access(_user: Author, slug: str) -> RoomRef | None:
        asked[slug] += 1
        return lobby if slug == "lobby" else None

    node = await make_hub(access)
    alice = node.connect(ALICE)
    for i in range(3):
        await send(alice, "hi", f"a-{i}")
    alice.push({"type": "typing", "room": "lobby"})
    alice.push({"type": "ping"})
    await alice.next("pong")
    assert asked["lobby"] == 1
    await subscribe(alice)
    await subscribe(alice)
    assert asked["lobby"] == 3  # each subscribe asks afresh
    for i in range(2):  # a no is never kept: each frame asks again
        alice.push({"type": "send", "room": "nowhere", "body": "hi", "client_id": f"n-{i}"})
        assert (await alice.next("error"))["code"] == "room_not_found"
    assert asked["nowhere"] == 2


async def test_unsubscribe_ends_live_messages_and_presence_and_is_always_answered(
    make_hub: HubFactory, redis: Redis
) -> None:
    node = await make_hub()
    alice, bob = node.connect(ALICE), node.connect(BOB)
    await subscribe(alice)
    await subscribe(bob)
    alice.push({"type": "unsubscribe", "room": "lobby"})
    assert await alice.next("unsubscribed") == {"type": "unsubscribed", "room": "lobby"}
    leave = await bob.next("presence")
    assert (leave["user"]["username"], leave["state"]) == ("alice", "leave")
    assert [user.username for user in await online_users(redis, "lobby")] == ["bob"]
    after = await send(bob, "alice has gone", "b-1")
    assert (await bob.next("message"))["id"] == after  # fanned out: alice's turn was then
    alice.push({"type": "unsubscribe", "room": "lobby"})  # not subscribed: answered alike
    assert await alice.next("unsubscribed") == {"type": "unsubscribed", "room": "lobby"}
    alice.push({"type": "ping"})
    await alice.next("pong")
    assert "message" not in [json.loads(frame)["type"] for frame in alice.sent]


class BreakingHistory(History):
    """History whose replay pages fail from the second on while `broken` (Redis gone)."""

    def __init__(self, redis: Redis, archive: ArchivedPages) -> None:
        super().__init__(redis, archive)
        self.broken = True
        self.replay_pages = 0

    async def page(
        self,
        room_id: int,
        slug: str,
        *,
        before: StreamId | None = None,
        after: StreamId | None = None,
        limit: int = 50,
        changes: bool = False,
    ) -> Page:
        if after is not None:
            self.replay_pages += 1
            if self.broken and self.replay_pages > 1:
                raise RedisConnectionError("Redis went away")
        return await super().page(
            room_id, slug, before=before, after=after, limit=limit, changes=changes
        )


async def test_a_replay_that_fails_ends_the_subscription_and_says_why(
    make_hub: HubFactory, redis: Redis
) -> None:
    ids = await append(redis, REPLAY_PAGE + 50)
    node = await make_hub(make_history=BreakingHistory)
    history = node.hub.history
    assert isinstance(history, BreakingHistory)
    alice, bob = node.connect(ALICE), node.connect(BOB)
    await subscribe(bob)
    await subscribe(alice, since=str(ids[0]))
    replayed = await messages(alice, REPLAY_PAGE)  # the first page came
    assert [m["id"] for m in replayed] == [str(i) for i in ids[1 : REPLAY_PAGE + 1]]
    # By kind: bob's join, heard over pub/sub, may reach alice's new subscription late.
    assert await alice.next("error") == {
        "type": "error",
        "code": "unavailable",
        "message": "could not load the missed messages of lobby; subscribe again",
        "room": "lobby",  # the subscription it ends
    }
    assert await alice.next("unsubscribed") == {"type": "unsubscribed", "room": "lobby"}
    kinds = [json.loads(frame)["type"] for frame in alice.sent]
    assert kinds.index("error") < kinds.index("unsubscribed")
    join, leave = await bob.next("presence"), await bob.next("presence")
    assert [(p["user"]["username"], p["state"]) for p in (join, leave)] == [
        ("alice", "join"),
        ("alice", "leave"),
    ]
    # Subscribing again from the last message seen brings the rest, then live ones.
    history.broken = False
    await subscribe(alice, since=replayed[-1]["id"])
    rest = await messages(alice, len(ids) - 1 - REPLAY_PAGE)
    assert [m["id"] for m in rest] == [str(i) for i in ids[REPLAY_PAGE + 1 :]]
    live = await send(bob, "and now live", "b-1")
    assert (await alice.next("message"))["id"] == live


async def test_a_subscribe_that_fails_after_its_presence_joined_leaves_again(
    make_hub: HubFactory, redis: Redis
) -> None:
    """A subscribe joins the room's presence, then reads who is online: if that read fails
    (a storm took every pooled connection, say), the subscribe answers `unavailable` and
    the subscription is gone, so nothing would keep, or end, the presence it left behind:
    the user would show online until the entry expired. It must leave again at once."""
    node = await make_hub()
    board = node.hub.presence
    real_online = board.online
    failures = 1

    async def online_once_failing(slug: str) -> list[Author]:
        nonlocal failures
        if failures:
            failures -= 1
            raise RedisConnectionError("No connection available.")
        return await real_online(slug)

    board.online = online_once_failing  # type: ignore[method-assign]
    alice = node.connect(ALICE)
    alice.push({"type": "subscribe", "room": "lobby"})
    error = await alice.next("error")
    assert error["code"] == "unavailable"
    assert await online_users(redis, "lobby") == []
    await subscribe(alice)  # again: joins as usual
    assert await online_users(redis, "lobby") == [ALICE]
