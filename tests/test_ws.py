"""Contract v1 over /ws with real clients, on both backends. Against a real `chatroom
serve`: every frame of the contract, order under load, a slow consumer and a reconnect
across the SQL seam. On an app node in the test's process (the same app, uvicorn
protocol and frame limit): bad frames, refused upgrades, private rooms and a logout."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from httpx import AsyncClient
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.typing import Origin
from websockets.uri import parse_uri

from chat_servers import PASSWORD, ChatNode, login
from chatroom import redis_client, redis_keys
from chatroom.accounts import tokens as tokens_module
from chatroom.domain.stream_ids import StreamId
from chatroom.rooms import directory as directory_module
from chatroom.store.tables import api_tokens, room_members, rooms
from conftest import Backend, OpenSocket, SignUp, StartApp, StartServer
from ws_clients import SESSION_COOKIE as SESSION
from ws_clients import ChatSocket, cookie_header, ws_url

FAST = {
    "send_rate_per_s": "100000",
    "send_burst": "100000",
    "frame_rate_per_s": "100000",
    "frame_burst": "100000",
}


async def test_every_frame_of_the_contract(
    chat_server: StartServer, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    server = await chat_server()
    alice_http, bob_http = await signed_up(server, "alice"), await signed_up(server, "bob")
    alice = await chat_socket(server, alice_http)
    bob = await chat_socket(server, bob_http)
    subscribed = await alice.subscribe()
    assert subscribed["room"] == "lobby" and subscribed["last_id"] == "0-0"
    assert [u["username"] for u in subscribed["online"]] == ["alice"]
    assert [u["username"] for u in (await bob.subscribe())["online"]] == ["alice", "bob"]
    join = await alice.next("presence")
    assert (join["room"], join["user"]["username"], join["state"]) == ("lobby", "bob", "join")
    assert set(join["user"]) >= {"id", "username", "display_name"}

    await alice.send({"type": "send", "room": "lobby", "body": " hello 😀 ", "client_id": "a1"})
    ack = await alice.next("ack")
    assert ack["client_id"] == "a1"
    for socket in (alice, bob):
        message = await socket.next("message")
        assert message["id"] == ack["id"] and message["body"] == "hello 😀"
        assert message["room"] == "lobby" and message["client_id"] == "a1"
        assert message["user"]["username"] == "alice"
        assert message["created_at"].endswith("Z")
        assert message["created_at"][20:23] == f"{StreamId.parse(ack['id']).ms % 1000:03d}"

    # A resend after a dropped connection: the first id, nothing stored twice.
    await alice.send({"type": "send", "room": "lobby", "body": "hello", "client_id": "a1"})
    assert (await alice.next("ack"))["id"] == ack["id"]
    async with server.client() as anonymous_free:
        anonymous_free.cookies.update(alice_http.cookies)
        history = (await anonymous_free.get("/api/rooms/lobby/messages")).json()
    assert [m["id"] for m in history["messages"]] == [ack["id"]]

    await alice.send({"type": "typing", "room": "lobby"})
    typing = await bob.next("typing")
    assert (typing["room"], typing["user"]["username"]) == ("lobby", "alice")

    await bob.send({"type": "ping"})
    assert await bob.next("pong") == {"type": "pong"}

    await bob.send({"type": "unsubscribe", "room": "lobby"})
    assert await bob.next("unsubscribed") == {"type": "unsubscribed", "room": "lobby"}
    leave = await alice.next("presence")
    assert (leave["user"]["username"], leave["state"]) == ("bob", "leave")
    await alice.send({"type": "send", "room": "lobby", "body": "bob left", "client_id": "a2"})
    await alice.next("message")
    await bob.send({"type": "ping"})
    await bob.next("pong")
    assert not [f for f in bob.pending if f["type"] == "message" and f["client_id"] == "a2"]


BAD_FRAMES = [
    ("{nope", "invalid_json"),
    ("[" * 50_000, "invalid_json"),
    (json.dumps({"room": "lobby"}), "missing_field"),
    (json.dumps({"type": "dance"}), "unknown_type"),
    (json.dumps({"type": "subscribe"}), "missing_field"),
    (json.dumps({"type": "subscribe", "room": "lobby", "since": "later"}), "invalid_since"),
    (json.dumps({"type": "subscribe", "room": "no-such-room"}), "room_not_found"),
    (json.dumps({"type": "send", "room": "lobby", "body": "  ", "client_id": "e1"}), "empty_body"),
    (
        json.dumps({"type": "send", "room": "lobby", "body": "x" * 4001, "client_id": "e2"}),
        "body_too_long",
    ),
    (json.dumps({"type": "send", "room": "lobby", "body": "hi"}), "missing_field"),
    (
        json.dumps({"type": "send", "room": "lobby", "body": "hi", "client_id": ""}),
        "invalid_client_id",
    ),
    ('{"type":"send","room":"lobby","body":"\\udc00","client_id":"e3"}', "invalid_body"),
    (
        json.dumps({"type": "send", "room": "nowhere", "body": "hi", "client_id": "e4"}),
        "room_not_found",
    ),
]


async def test_each_bad_frame_gets_its_error_and_the_socket_stays_usable(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    # The send to an unknown room below takes one of the three tokens; one token every
    # 20 s, so that the steps up to the refused send, however slow, earn none back.
    node = await chat_app(settings={"send_rate_per_s": "0.05", "send_burst": "3"})
    http = await signed_up(node, "alice")
    alice = await chat_socket(node, http)
    for frame, code in BAD_FRAMES:
        await alice.send(frame)
        error = await alice.next()
        assert (error["type"], error["code"]) == ("error", code), frame[:80]
        assert error["message"]
        sent = json.loads(frame) if not frame.startswith(("{n", "[")) else {}
        if sent.get("type") == "send" and sent.get("client_id"):
            assert error["client_id"] == sent["client_id"]
        await alice.send({"type": "ping"})
        assert await alice.next() == {"type": "pong"}
    for i in range(2):
        await alice.send({"type": "send", "room": "lobby", "body": "hi", "client_id": f"r{i}"})
        await alice.next("ack")
    await alice.send({"type": "send", "room": "lobby", "body": "hi", "client_id": "r9"})
    limited = await alice.next("error")
    assert limited["code"] == "rate_limited" and limited["client_id"] == "r9"
    assert 0 < limited["retry_after_ms"] <= 20_000
    await alice.send({"type": "ping"})
    assert await alice.next() == {"type": "pong"}

    # Only a frame over the size limit closes the socket: 1009.
    with pytest.raises(ConnectionClosed) as closed:
        await alice.send("x" * (2 * 1024 * 1024))  # the close may come while sending
        await alice.next(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    # The server and other clients are unaffected.
    again = await chat_socket(node, http)
    await again.send({"type": "ping"})
    assert await again.next() == {"type": "pong"}


async def test_upgrades_without_a_session_or_from_another_site_are_refused(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    node = await chat_app()
    http = await signed_up(node, "alice")
    with pytest.raises(InvalidStatus) as refused:
        await chat_socket(node, None)
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as refused:
        await chat_socket(node, None, headers={"Cookie": "chatroom_session=forged"})
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as refused:
        await chat_socket(node, http, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    body = json.loads(refused.value.response.body or b"{}")
    assert body["error"]["code"] == "origin_not_allowed"
    with pytest.raises(InvalidStatus) as refused:  # a cookie but no Origin: refused
        await chat_socket(node, http, origin=None)
    assert refused.value.response.status_code == 403

    # A bot: a bearer token and no Origin is fine.
    token = (await http.post("/api/tokens", json={"name": "bot"})).json()["token"]
    bot = await chat_socket(
        node,
        None,
        origin=None,
        headers={"Authorization": f"Bearer {token['secret']}"},
        compression="deflate",
    )
    assert bot.socket.response is not None
    # permessage-deflate is off even when the client offers it.
    assert "Sec-WebSocket-Extensions" not in bot.socket.response.headers
    await bot.send({"type": "ping"})
    assert await bot.next() == {"type": "pong"}


async def test_private_rooms_are_closed_to_non_members(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    node = await chat_app()
    owner_http, outsider_http = await signed_up(node, "owner"), await signed_up(node, "eve")
    created = await owner_http.post(
        "/api/rooms", json={"slug": "hideout", "title": "Hideout", "private": True}
    )
    assert created.status_code == 201, created.text
    owner = await chat_socket(node, owner_http)
    eve = await chat_socket(node, outsider_http)
    await owner.subscribe("hideout")
    for frame in (
        {"type": "subscribe", "room": "hideout"},
        {"type": "send", "room": "hideout", "body": "let me in", "client_id": "e1"},
        {"type": "typing", "room": "hideout"},
    ):
        await eve.send(frame)
        assert (await eve.next("error"))["code"] == "room_not_found"
    await owner.send({"type": "send", "room": "hideout", "body": "secret", "client_id": "o1"})
    assert (await owner.next("message"))["body"] == "secret"
    await eve.send({"type": "ping"})
    await eve.next("pong")
    assert {f["type"] for f in eve.pending} <= {"error"}


async def test_three_senders_x_200_arrive_at_every_subscriber_in_the_same_order(
    chat_server: StartServer, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    server = await chat_server(settings=FAST)
    https = [await signed_up(server, name) for name in ("ann", "ben", "cat", "dan")]
    sockets = [await chat_socket(server, http) for http in https]
    for socket in sockets:
        await socket.subscribe()

    async def send_all(socket: ChatSocket, name: str) -> None:
        for i in range(200):
            body = {"type": "send", "room": "lobby", "body": f"{name} {i}", "client_id": f"{i}"}
            await socket.send(body)

    await asyncio.gather(*(send_all(s, n) for s, n in zip(sockets[:3], "abc", strict=True)))
    seen = [[m["id"] for m in await socket.messages(600)] for socket in sockets]
    assert all(ids == seen[0] for ids in seen)
    assert seen[0] == sorted(seen[0], key=StreamId.parse)
    assert len(set(seen[0])) == 600
    for socket in sockets[:3]:  # every send was acked
        acks = [f for f in socket.pending if f["type"] == "ack"]
        while len(acks) < 200:
            acks.append(await socket.next("ack"))


async def test_a_slow_consumer_is_disconnected_with_4000(
    chat_server: StartServer, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    # A node of its own: the slow reader must not share the node's event loop.
    server = await chat_server(settings={**FAST, "outbound_queue_max": "10"})
    slow_http, fast_http = (
        await signed_up(server, "slowpoke"),
        await signed_up(server, "sender"),
    )
    slow = await chat_socket(server, slow_http, max_queue=1)
    await slow.subscribe()
    sender = await chat_socket(server, fast_http)
    body = "z" * 4000
    for i in range(1500):
        await sender.send({"type": "send", "room": "lobby", "body": body, "client_id": f"{i}"})
    for _ in range(1500):
        await sender.next("ack", timeout=30)
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await slow.next(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
    # The sender, subscribed to nothing, is unaffected.
    await sender.send({"type": "ping"})
    assert await sender.next("pong") == {"type": "pong"}


async def test_reconnect_with_since_gets_exactly_what_was_missed_across_the_sql_seam(
    backend: Backend,
    tmp_path: Path,
    redis: Redis,
    python: str,
    chat_server: StartServer,
    signed_up: SignUp,
    chat_socket: OpenSocket,
) -> None:
    server = await chat_server(settings=FAST)
    alice_http, bob_http = await signed_up(server, "alice"), await signed_up(server, "bob")
    alice, bob = await chat_socket(server, alice_http), await chat_socket(server, bob_http)
    await alice.subscribe()

    async def bob_sends(count: int, prefix: str) -> list[str]:
        ids = []
        for i in range(count):
            frame = {
                "type": "send",
                "room": "lobby",
                "body": f"{prefix}{i}",
                "client_id": f"{prefix}{i}",
            }
            await bob.send(frame)
            ids.append((await bob.next("ack"))["id"])
        return ids

    seen = await bob_sends(20, "before-")
    assert [m["id"] for m in await alice.messages(20)] == seen
    await alice.close()

    missed = await bob_sends(30, "archived-")
    # Archive everything so far and trim it: the missed messages now live only in SQL.
    env = {
        **backend.env(),
        "CHATROOM_ARCHIVER_HOT_WINDOW": "0",
        "CHATROOM_DATA_DIR": str(tmp_path),
    }
    archiver = await asyncio.create_subprocess_exec(
        python, "-m", "chatroom", "archive", "--once", env=env
    )
    assert await asyncio.wait_for(archiver.wait(), 60) == 0
    stream = "chatroom:room:{lobby}:stream"
    assert await redis.xlen(stream) == 0
    missed += await bob_sends(10, "streamed-")

    alice = await chat_socket(server, alice_http)
    subscribed = await alice.subscribe(since=seen[-1])
    assert subscribed["last_id"] == missed[-1]
    assert [m["id"] for m in await alice.messages(40)] == missed
    live = await bob_sends(1, "live-")
    assert [m["id"] for m in await alice.messages(1)] == live
    await alice.send({"type": "ping"})
    await alice.next("pong")
    assert not [f for f in alice.pending if f["type"] == "message"]  # no duplicate


async def test_logging_out_closes_the_sockets_of_that_session(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    node = await chat_app(settings={"presence_expiry_s": "2"})
    http = await signed_up(node, "alice")
    alice = await chat_socket(node, http)
    await alice.subscribe()
    assert (await http.post("/api/logout")).status_code == 204
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await alice.next(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4501


async def _close_code(socket: ChatSocket, timeout: float) -> int | None:
    """Read until the server closes the socket; its close code."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(timeout):
            while True:
                await socket.next(timeout=timeout)
    return None if closed.value.rcvd is None else closed.value.rcvd.code


# A heartbeat every 15 s: a socket closed within 5 s was closed by the signal, not by the
# heartbeat's recheck.
SLOW_HEARTBEAT = {"presence_expiry_s": "60"}


async def _another_device(node: ChatNode, closing: AsyncExitStack, username: str) -> AsyncClient:
    """A second client of an existing user, logged in on `node`: a session of its own."""
    client = await closing.enter_async_context(node.client())
    await login(client, username)
    return client


async def test_a_password_change_signs_out_every_other_session_and_socket_at_once(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket, closing: AsyncExitStack
) -> None:
    here, elsewhere = (
        await chat_app(settings=SLOW_HEARTBEAT),
        await chat_app(settings=SLOW_HEARTBEAT),
    )
    laptop = await signed_up(here, "alice")
    phone = await _another_device(elsewhere, closing, "alice")
    laptop_socket, phone_socket = (
        await chat_socket(here, laptop),
        await chat_socket(elsewhere, phone),
    )
    await laptop_socket.subscribe()
    await phone_socket.subscribe()
    token = (await laptop.post("/api/tokens", json={"name": "bot"})).json()["token"]["secret"]

    changed = await laptop.post(
        "/api/me/password",
        json={"current_password": PASSWORD, "new_password": "a new passphrase"},
    )
    assert changed.status_code == 204
    # The phone's socket, on the other node, closes at once; its session is gone.
    assert await _close_code(phone_socket, timeout=5) == 4501
    assert (await phone.get("/api/me")).status_code == 401
    # The laptop, which changed it, stays signed in, its socket open.
    assert (await laptop.get("/api/me")).status_code == 200
    await laptop_socket.send({"type": "ping"})
    await laptop_socket.next("pong")
    # A bot's token is not a session: the owner revokes it in the token list if need be.
    async with here.client() as bot:
        me = await bot.get("/api/me", headers={"authorization": f"Bearer {token}"})
        assert me.status_code == 200


async def test_logging_out_everywhere_ends_every_session_and_socket_at_once(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket, closing: AsyncExitStack
) -> None:
    node = await chat_app(settings=SLOW_HEARTBEAT)
    laptop = await signed_up(node, "alice")
    phone = await _another_device(node, closing, "alice")
    sessions = [client.cookies[SESSION] for client in (laptop, phone)]
    sockets = [await chat_socket(node, laptop), await chat_socket(node, phone)]
    for socket in sockets:
        await socket.subscribe()
    out = await laptop.post("/api/logout/all")
    assert out.status_code == 204
    assert SESSION not in laptop.cookies  # this browser forgets it too
    assert [await _close_code(socket, timeout=5) for socket in sockets] == [4501, 4501]
    async with node.client() as anyone:
        for session in sessions:
            me = await anyone.get("/api/me", headers={"cookie": f"{SESSION}={session}"})
            assert me.status_code == 401
    # A plain logout closes that session's sockets at once too.
    again = await _another_device(node, closing, "alice")
    socket = await chat_socket(node, again)
    await socket.subscribe()
    assert (await again.post("/api/logout")).status_code == 204
    assert await _close_code(socket, timeout=5) == 4501


def _refused_upgrades(code: str) -> float:
    return REGISTRY.get_sample_value("chatroom_ws_upgrades_refused_total", {"code": code}) or 0.0


async def test_refused_upgrades_are_403s_counted_and_not_logged_as_errors(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket, caplog: pytest.LogCaptureFixture
) -> None:
    node = await chat_app()
    http = await signed_up(node, "alice")
    caplog.clear()  # what the node said while starting (a Redis without AOF, say) is not ours
    before = _refused_upgrades("origin_not_allowed")
    https_here = node.url.replace("http://", "https://", 1)
    # A malformed Origin, and this very host but over https: neither is this site.
    for origin in ("http://[", "http://127.0.0.1:99999", https_here):
        with pytest.raises(InvalidStatus) as refused:
            await chat_socket(node, http, origin=origin)
        assert refused.value.response.status_code == 403, origin
        body = json.loads(refused.value.response.body or b"{}")
        assert body == {
            "error": {"code": "origin_not_allowed", "message": "this origin may not open /ws"}
        }
    for _ in range(5):
        with pytest.raises(InvalidStatus):
            await chat_socket(node, None)
    assert _refused_upgrades("origin_not_allowed") == before + 3
    # Anyone can send these, as many as they like: not one line at warning level or above.
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == [], [r.getMessage() for r in loud]
    await (await chat_socket(node, http)).subscribe()  # the site's own page still gets in


async def test_the_heartbeat_closes_the_sockets_whose_session_or_token_ended_and_no_other(
    chat_app: StartApp,
    signed_up: SignUp,
    chat_socket: OpenSocket,
    redis: Redis,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One credential per bulk lookup: the heartbeat's chunks are walked, not just one.
    monkeypatch.setattr(redis_client, "SCRIPT_CALLS_PER_PIPELINE", 1)
    monkeypatch.setattr(tokens_module, "BULK_CHUNK", 1)
    node = await chat_app(settings={"presence_expiry_s": "2"})  # a heartbeat every 0.5 s
    alice, bob, carol = [await signed_up(node, name) for name in ("alice", "bob", "carol")]
    made = [await carol.post("/api/tokens", json={"name": f"bot {n}"}) for n in (1, 2)]
    secrets = [answer.json()["token"]["secret"] for answer in made]
    browsers = [await chat_socket(node, client) for client in (alice, bob)]
    bots = [
        await chat_socket(node, origin=None, headers={"authorization": f"Bearer {secret}"})
        for secret in secrets
    ]
    for socket in [*browsers, *bots]:
        await socket.subscribe()
    # Ended behind the node's back, with no signal: only the heartbeat can find out.
    bob_session = hashlib.sha256(bob.cookies[SESSION].encode()).hexdigest()
    await redis.delete(redis_keys.session(bob_session))
    revoked = hashlib.sha256(secrets[0].encode()).hexdigest()
    async with engine.begin() as conn:
        await conn.execute(api_tokens.delete().where(api_tokens.c.secret_hash == revoked))

    assert await _close_code(browsers[1], timeout=5) == 4501
    assert await _close_code(bots[0], timeout=5) == 4501
    await asyncio.sleep(1.5)  # three more heartbeats: the others are still served
    for socket in (browsers[0], bots[1]):
        await socket.send({"type": "ping"})
        await socket.next("pong")
    async with engine.connect() as conn:
        used = (await conn.execute(sa.select(api_tokens.c.last_used_at))).scalars().all()
    assert len(used) == 1 and used[0] is not None


async def test_the_heartbeat_ends_subscriptions_to_private_rooms_and_dms_left_behind_its_back(
    chat_app: StartApp,
    signed_up: SignUp,
    chat_socket: OpenSocket,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(directory_module, "_MEMBERSHIPS_PER_QUERY", 1)  # walk the chunks
    node = await chat_app(settings={"presence_expiry_s": "2"})  # a heartbeat every 0.5 s
    owner, bob, cat = [await signed_up(node, name) for name in ("owner", "bob", "cat")]
    made = await owner.post("/api/rooms", json={"slug": "den", "title": "Den", "private": True})
    assert made.status_code == 201, made.text
    for name in ("bob", "cat"):
        added = await owner.post("/api/rooms/den/members", json={"username": name})
        assert added.status_code == 204, added.text
    dm = (await bob.post("/api/dms", json={"usernames": ["cat"]})).json()["room"]
    people = {"o": owner, "b": bob, "c": cat}
    sockets = {name: await chat_socket(node, http) for name, http in people.items()}
    for name, socket in sockets.items():
        await socket.subscribe("den")
        if name != "o":
            await socket.subscribe(dm["slug"])
    # Memberships gone with no signal (SQL edited by hand): only the heartbeat can see.
    bob_id, cat_id = [(await http.get("/api/me")).json()["user"]["id"] for http in (bob, cat)]
    async with engine.begin() as conn:
        query = sa.select(rooms.c.slug, rooms.c.id).where(rooms.c.slug.in_(["den", dm["slug"]]))
        room_id = {slug: id_ for slug, id_ in await conn.execute(query)}
        gone = [(room_id["den"], bob_id), (room_id[dm["slug"]], cat_id)]
        await conn.execute(
            room_members.delete().where(
                sa.tuple_(room_members.c.room_id, room_members.c.user_id).in_(gone)
            )
        )
    ended = {}
    for name, slug in (("b", "den"), ("c", dm["slug"])):
        error = await sockets[name].next("error", timeout=5)
        assert (error["code"], error["room"]) == ("forbidden", slug), error
        ended[name] = (await sockets[name].next("unsubscribed", timeout=5))["room"]
    assert ended == {"b": "den", "c": dm["slug"]}
    await asyncio.sleep(1.5)  # three more heartbeats: every other subscription stays
    await sockets["o"].send({"type": "send", "room": "den", "body": "still here", "client_id": "o"})
    await sockets["b"].send(
        {"type": "send", "room": dm["slug"], "body": "and me", "client_id": "b"}
    )
    await sockets["c"].send({"type": "send", "room": "den", "body": "me too", "client_id": "c"})
    for name in "obc":
        assert (await sockets[name].next("ack"))["client_id"] == name
    assert (await sockets["o"].next("message"))["body"] in {"still here", "me too"}
    assert (await sockets["b"].next("message"))["body"] == "and me"
    assert {(await sockets["c"].next("message"))["body"] for _ in range(2)} == {
        "still here",
        "me too",
    }


class RawSocket:
    """A WebSocket client that answers the node's pings only when the test says so."""

    def __init__(
        self, client: ClientProtocol, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.client, self.reader, self.writer = client, reader, writer

    @classmethod
    async def open(cls, server: ChatNode, http: AsyncClient) -> RawSocket:
        url = ws_url(server)
        client = ClientProtocol(parse_uri(url), origin=Origin(server.url))
        request = client.connect()
        request.headers.update(cookie_header(http))
        client.send_request(request)
        host, port = url.removeprefix("ws://").split("/")[0].split(":")
        socket = cls(client, *await asyncio.open_connection(host, int(port)))
        socket.flush()
        while client.state is not State.OPEN:
            await socket.frames()
        return socket

    async def frames(self) -> list[Frame]:
        """The frames that came next; nothing is sent (pongs wait for `flush`)."""
        data = await asyncio.wait_for(self.reader.read(65536), 10)
        assert data, "the node closed the connection"
        self.client.receive_data(data)
        return [e for e in self.client.events_received() if isinstance(e, Frame)]

    def flush(self) -> None:
        self.writer.write(b"".join(self.client.data_to_send()))


FAST_PINGS = {"ws_ping_interval_s": "0.5", "ws_ping_timeout_s": "1"}


async def test_a_client_whose_pong_came_while_the_node_stood_still_is_not_dropped(
    chat_server: StartServer, signed_up: SignUp
) -> None:
    # libuv runs due timers before it reads sockets: a node paused between its ping and
    # the client's pong saw the pong's deadline pass first and closed a live client with
    # 1011 (36 sockets so in a chaos campaign's node pauses).
    server = await chat_server(settings=FAST_PINGS)
    socket = await RawSocket.open(server, await signed_up(server, "alice"))
    # The node's next ping: the node is paused before our pong (queued by the protocol)
    # goes out, and stays paused past the pong's deadline.
    while not any(frame.opcode is Opcode.PING for frame in await socket.frames()):
        pass
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        socket.flush()
        await asyncio.sleep(3.0)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    socket.client.send_text(b'{"type":"ping"}')
    socket.flush()
    texts: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while {"type": "pong"} not in texts:
            for frame in await socket.frames():
                assert frame.opcode is not Opcode.CLOSE, Close.parse(frame.data)
                if frame.opcode is Opcode.TEXT:
                    texts.append(json.loads(frame.data))
            socket.flush()  # our pongs to later pings
    socket.writer.close()


async def test_a_client_that_answers_no_ping_is_closed_with_1011_when_its_pong_is_late(
    chat_server: StartServer, signed_up: SignUp
) -> None:
    server = await chat_server(settings=FAST_PINGS)
    socket = await RawSocket.open(server, await signed_up(server, "alice"))
    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(10):
        while not any(frame.opcode is Opcode.CLOSE for frame in await socket.frames()):
            pass  # never flushed: no pong goes out
    # One ping interval and one timeout, with no grace: the node was not the late one.
    assert socket.client.close_rcvd is not None
    assert (socket.client.close_rcvd.code, socket.client.close_rcvd.reason) == (
        1011,
        "keepalive ping timeout",
    )
    assert asyncio.get_running_loop().time() - started < 5
    socket.writer.close()


async def test_a_private_room_subscribed_while_the_heartbeat_asks_sql_is_not_ended_by_it(
    chat_app: StartApp,
    signed_up: SignUp,
    chat_socket: OpenSocket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The heartbeat asked SQL about the subscriptions it saw, then judged every one the
    # socket had by then: one made meanwhile was ended as "no longer a member" (CI, once).
    asked, answer = asyncio.Event(), asyncio.Event()
    memberships = directory_module.RoomDirectory.memberships

    async def slow(self: Any, pairs: Any) -> set[tuple[int, int]]:
        found = await memberships(self, pairs)
        asked.set()
        await answer.wait()
        return found

    monkeypatch.setattr(directory_module.RoomDirectory, "memberships", slow)
    node = await chat_app(settings={"presence_expiry_s": "2"})  # a heartbeat every 0.5 s
    owner = await signed_up(node, "owner")
    for slug in ("den", "attic"):
        made = await owner.post("/api/rooms", json={"slug": slug, "title": slug, "private": True})
        assert made.status_code == 201, made.text
    socket = await chat_socket(node, owner)
    await socket.subscribe("den")
    await asyncio.wait_for(asked.wait(), 5)  # the heartbeat's query is under way ...
    await socket.subscribe("attic")  # ... when this subscription is made
    answer.set()
    await asyncio.sleep(1.5)  # that beat ends, and two more
    for slug in ("den", "attic"):
        await socket.send({"type": "send", "room": slug, "body": slug, "client_id": slug})
        assert (await socket.next("ack"))["client_id"] == slug
    assert not [f for f in socket.pending if f["type"] in ("error", "unsubscribed")]
