"""Read state on the server: a member's read mark per room, set by a `read` frame or
POST /api/rooms/{slug}/read, kept in SQL (coalesced), synced live to the member's other
sockets on every node, and the room list's unread and mention counts computed from it,
on both engines; the read marks store itself (monotonic, batched)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_servers import api_error
from chatroom.domain.stream_ids import StreamId
from chatroom.rooms.read_marks import ReadMarks
from chatroom.store.counts import room_ids
from conftest import OpenSocket, SignUp, StartApp
from waiting import wait_until
from ws_clients import ChatSocket


async def _room(client: httpx.AsyncClient, slug: str = "lobby") -> dict[str, Any]:
    rooms = (await client.get("/api/rooms")).json()["rooms"]
    return next(room for room in rooms if room["slug"] == slug)


async def _send(socket: ChatSocket, body: str, client_id: str, room: str = "lobby") -> str:
    await socket.send({"type": "send", "room": room, "body": body, "client_id": client_id})
    return str((await socket.next("ack"))["id"])


async def test_unread_counts_and_mentions_follow_the_read_mark_across_reloads_and_devices(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    node = await chat_app(settings={"read_mark_flush_s": "0.05"})
    alice_http, bob_http = await signed_up(node, "alice"), await signed_up(node, "bob")
    bob = await chat_socket(node, bob_http)
    # A member who never read the room has read what came before they joined.
    lobby = await _room(alice_http)
    assert lobby["unread"] == 0 and lobby["mentions"] == 0 and lobby["last_read"] is not None

    first = await _send(bob, "hello all", "b1")
    await _send(bob, "@Alice, look", "b2")  # a mention, whatever the case
    await _send(bob, "mail alice@example.org", "b3")  # not a mention
    await _send(bob, "@room standup", "b4")  # everyone is mentioned
    lobby = await _room(alice_http)
    assert (lobby["unread"], lobby["unread_more"], lobby["mentions"]) == (4, False, 2)
    assert (await _room(bob_http))["unread"] == 0  # one's own messages are not unread

    # Alice reads the first message on one device (a socket)...
    alice = await chat_socket(node, alice_http)
    await alice.send({"type": "read", "room": "lobby", "id": first})
    synced = await alice.next("read")  # her sockets hear of it, this one too
    assert synced == {"type": "read", "room": "lobby", "id": first}
    # ... and the room list (another device, a reload) says so.
    lobby = await _room(alice_http)
    assert (lobby["last_read"], lobby["unread"], lobby["mentions"]) == (first, 3, 2)

    # A mark never moves back (an older tab reporting late).
    await alice.send({"type": "read", "room": "lobby", "id": "1-0"})
    await alice.send({"type": "ping"})
    await alice.next("pong")
    assert (await _room(alice_http))["last_read"] == first

    # Over HTTP too; a mark past the newest message is taken as that message.
    newest = await _send(bob, "last one", "b5")
    answer = await alice_http.post("/api/rooms/lobby/read", json={"id": "99999999999999-0"})
    assert answer.status_code == 204
    assert (await alice.next("read"))["id"] == newest
    lobby = await _room(alice_http)
    assert (lobby["last_read"], lobby["unread"], lobby["mentions"]) == (newest, 0, 0)


async def test_unread_counts_stop_at_99_plus(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    node = await chat_app(settings={"send_rate_per_s": "100000", "send_burst": "100000"})
    alice_http, bob_http = await signed_up(node, "alice"), await signed_up(node, "bob")
    bob = await chat_socket(node, bob_http)
    for i in range(120):
        await bob.send({"type": "send", "room": "lobby", "body": f"m{i}", "client_id": f"{i}"})
    for _ in range(120):
        await bob.next("ack")
    lobby = await _room(alice_http)
    assert (lobby["unread"], lobby["unread_more"]) == (99, True)


async def test_bad_read_frames_and_requests_get_clear_errors(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    node = await chat_app()
    alice_http = await signed_up(node, "alice")
    alice = await chat_socket(node, alice_http)
    for frame, code in [
        ({"type": "read", "room": "lobby"}, "missing_field"),
        ({"type": "read", "room": "lobby", "id": 12}, "invalid_id"),
        ({"type": "read", "room": "lobby", "id": "yesterday"}, "invalid_id"),
        ({"type": "read", "room": "nowhere", "id": "1-0"}, "room_not_found"),
    ]:
        await alice.send(frame)
        assert (await alice.next("error"))["code"] == code, frame
    answer = await alice_http.post("/api/rooms/lobby/read", json={"id": "soon"})
    assert answer.status_code == 422 and api_error(answer)["code"] == "invalid_id"
    answer = await alice_http.post("/api/rooms/nowhere/read", json={"id": "1-0"})
    assert answer.status_code == 404


async def test_a_read_mark_reaches_the_users_sockets_on_another_node(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    one, two = await chat_app(), await chat_app()
    alice_http, bob_http = await signed_up(one, "alice"), await signed_up(one, "bob")
    bob = await chat_socket(one, bob_http)
    message = await _send(bob, "hi", "b1")
    phone = await chat_socket(two, alice_http)  # her session works on node two
    laptop = await chat_socket(one, alice_http)
    await laptop.send({"type": "read", "room": "lobby", "id": message})
    assert (await phone.next("read"))["id"] == message
    assert (await laptop.next("read"))["id"] == message
    # The mark is written within the flush interval, and node two answers with it.
    async with two.client(cookies=alice_http.cookies) as phone_http:

        async def read_on_two() -> bool:
            return (await _room(phone_http))["last_read"] == message

        await wait_until(read_on_two, what="node two sees the read mark")
    assert (await _room(bob_http))["unread"] == 0


async def test_the_store_keeps_the_furthest_mark_and_merges_pending_ones(
    engine: AsyncEngine,
) -> None:
    from chatroom.accounts.users_table import now_utc
    from chatroom.store.tables import users

    async with engine.begin() as conn:
        for name in ("u1", "u2"):
            await conn.execute(
                users.insert().values(
                    username=name,
                    username_key=name,
                    display_name=name,
                    password_hash="x",
                    created_at=now_utc(),
                )
            )
    lobby = (await room_ids(engine))["lobby"]
    marks = ReadMarks(engine, flush_s=60)
    user = 1
    assert await marks.of_user(user, [lobby]) == {}
    assert marks.note(user, lobby, StreamId(5, 1))
    assert not marks.note(user, lobby, StreamId(5, 0))  # behind what is noted
    assert await marks.of_user(user, [lobby]) == {lobby: StreamId(5, 1)}  # pending
    await marks.flush()
    await marks.store([((user, lobby), StreamId(4, 9)), ((2, lobby), StreamId(7, 0))])
    assert await marks.of_user(user, [lobby]) == {lobby: StreamId(5, 1)}  # kept
    await marks.store([((user, lobby), StreamId(5, 2))])
    assert await marks.of_user(user, [lobby]) == {lobby: StreamId(5, 2)}
    await marks.store([((user, lobby), StreamId(6, 0))])  # the time moves, the seq resets
    assert await marks.of_user(user, [lobby]) == {lobby: StreamId(6, 0)}
    assert await marks.of_user(2, [lobby]) == {lobby: StreamId(7, 0)}


async def test_a_mark_being_written_is_still_seen(engine: AsyncEngine) -> None:
    """While a flush writes, the node's answers keep the marks it is writing."""
    lobby = (await room_ids(engine))["lobby"]
    from chatroom.accounts.users_table import now_utc
    from chatroom.store.tables import users

    async with engine.begin() as conn:
        await conn.execute(
            users.insert().values(
                username="u1",
                username_key="u1",
                display_name="u1",
                password_hash="x",
                created_at=now_utc(),
            )
        )
    seen_during_write: list[dict[int, StreamId]] = []

    class Watched(ReadMarks):
        async def store(self, marks: Any) -> None:
            seen_during_write.append(await self.of_user(1, [lobby]))
            await super().store(marks)

    marks = Watched(engine, flush_s=60)
    marks.note(1, lobby, StreamId(9, 0))
    await marks.flush()
    assert seen_during_write == [{lobby: StreamId(9, 0)}]
    assert await marks.of_user(1, [lobby]) == {lobby: StreamId(9, 0)}
