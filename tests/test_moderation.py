"""Moderation on two app nodes sharing one Redis and one SQL: a mute or a removal made
through one node holds on the other at once, a ban closes the user's sockets on both and
ends their sessions and tokens, only owners and admins moderate, and the log keeps it all."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.exceptions import ConnectionClosed

from chat_servers import PASSWORD, api_error
from chatroom.domain.moderation import BANNED_CLOSE_CODE, MUTE, Action
from chatroom.rooms.moderation_log import ModerationLog, record_action
from chatroom.rooms.restrictions import RoomRestrictions
from conftest import OpenSocket, SignUp, StartApp
from ws_clients import ChatSocket

# A heartbeat every 15 s: what acts on the other node within a test is the signal.
SETTINGS = {"presence_expiry_s": "60", "send_rate_per_s": "1000", "send_burst": "1000"}
HOUR = 3600


async def _den(
    owner: httpx.AsyncClient, *members: httpx.AsyncClient, private: bool = False
) -> None:
    created = await owner.post(
        "/api/rooms", json={"slug": "den", "title": "Den", "private": private}
    )
    assert created.status_code == 201, created.text
    for member in members:
        if private:
            me = (await member.get("/api/me")).json()["user"]["username"]
            added = await owner.post("/api/rooms/den/members", json={"username": me})
            assert added.status_code == 204, added.text
        else:
            assert (await member.post("/api/rooms/den/join")).status_code == 204


async def _send(socket: ChatSocket, client_id: str, room: str = "den") -> dict[str, Any]:
    await socket.send({"type": "send", "room": room, "body": "hello", "client_id": client_id})
    # The reply is the ack or an error; the sender's own message may come before it.
    while True:
        frame = await socket.next()
        if frame.get("client_id") == client_id and frame["type"] in ("ack", "error"):
            return frame


async def _closed(socket: ChatSocket) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(10):
            while True:
                await socket.socket.recv()
    received = closed.value.rcvd
    return (None, None) if received is None else (received.code, received.reason)


async def test_a_mute_through_one_node_holds_on_the_other_at_once(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    one, two = await chat_app(settings=SETTINGS), await chat_app(settings=SETTINGS)
    await signed_up(one, "root")  # the first user is the admin
    owner, bob = await signed_up(one, "olga"), await signed_up(two, "bob")
    await _den(owner, bob)
    socket = await chat_socket(two, bob)
    await socket.subscribe("den")
    assert (await _send(socket, "b1"))["type"] == "ack"

    muted = await owner.post(
        "/api/rooms/den/mutes", json={"username": "bob", "duration_s": HOUR, "reason": "spam"}
    )
    assert muted.status_code == 200, muted.text
    shown = muted.json()["restriction"]
    assert (shown["user"]["username"], shown["kind"], shown["room"]) == ("bob", "mute", "den")
    told = await socket.next("muted")  # node two heard it
    assert told["room"] == "den" and told["until"].endswith("Z")

    refused = await _send(socket, "b2")
    assert (refused["type"], refused["code"], refused["room"]) == ("error", "muted", "den")
    assert refused["until"] == told["until"] and "until" in refused["message"]
    await socket.send({"type": "typing", "room": "den"})
    assert (await socket.next("error"))["code"] == "muted"
    # Reading goes on: a fresh subscribe works, and says the mute again.
    fresh = await chat_socket(two, bob)
    await fresh.subscribe("den")
    assert (await fresh.next("muted"))["until"] == told["until"]
    listed = (await owner.get("/api/rooms/den/moderation")).json()["restrictions"]
    assert [(r["user"]["username"], r["kind"]) for r in listed] == [("bob", "mute")]

    assert (await owner.delete("/api/rooms/den/mutes/bob")).status_code == 204
    assert (await socket.next("muted"))["until"] is None
    assert (await _send(socket, "b3"))["type"] == "ack"
    assert (await owner.get("/api/rooms/den/moderation")).json()["restrictions"] == []


async def test_a_removal_ends_the_subscription_and_refuses_a_return(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    one, two = await chat_app(settings=SETTINGS), await chat_app(settings=SETTINGS)
    await signed_up(one, "root")
    owner, bob = await signed_up(one, "olga"), await signed_up(two, "bob")
    await _den(owner, bob)
    socket = await chat_socket(two, bob)
    await socket.subscribe("den")
    assert (await _send(socket, "b1"))["type"] == "ack"

    removed = await owner.post(
        "/api/rooms/den/removals", json={"username": "bob", "duration_s": HOUR}
    )
    assert removed.status_code == 200, removed.text
    error = await socket.next("error")
    assert (error["code"], error["room"]) == ("removed", "den") and error["until"]
    assert await socket.next("unsubscribed") == {"type": "unsubscribed", "room": "den"}
    room_event = await socket.next("room")
    assert (room_event["event"], room_event["room"]["slug"]) == ("removed", "den")

    assert (await _send(socket, "b2"))["code"] == "removed"
    await socket.send({"type": "subscribe", "room": "den"})
    assert (await socket.next("error"))["code"] == "removed"
    again = await bob.post("/api/rooms/den/join")
    assert again.status_code == 403 and api_error(again)["code"] == "removed"
    members = (await owner.get("/api/rooms/den/members")).json()["members"]
    assert [m["username"] for m in members] == ["olga"]

    # Let back in early: joining works again.
    assert (await owner.delete("/api/rooms/den/removals/bob")).status_code == 204
    assert (await bob.post("/api/rooms/den/join")).status_code == 204


async def test_a_removal_from_a_private_room_ends_access_and_the_owner_cannot_re_add(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    node = await chat_app(settings=SETTINGS)
    await signed_up(node, "root")
    owner, bob = await signed_up(node, "olga"), await signed_up(node, "bob")
    await _den(owner, bob, private=True)
    assert (await bob.get("/api/rooms/den")).status_code == 200
    removed = await owner.post(
        "/api/rooms/den/removals", json={"username": "bob", "duration_s": 60}
    )
    assert removed.status_code == 200, removed.text
    assert (await bob.get("/api/rooms/den")).status_code == 404
    re_add = await owner.post("/api/rooms/den/members", json={"username": "bob"})
    assert re_add.status_code == 403 and api_error(re_add)["code"] == "removed"


async def test_a_ban_closes_sockets_on_both_nodes_and_ends_sessions_and_tokens(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    one, two = await chat_app(settings=SETTINGS), await chat_app(settings=SETTINGS)
    admin = await signed_up(one, "root")
    bob = await signed_up(one, "bob")
    secret = (await bob.post("/api/tokens", json={"name": "bot"})).json()["token"]["secret"]
    sockets = [await chat_socket(one, bob), await chat_socket(two, bob)]
    for socket in sockets:
        await socket.subscribe()

    banned = await admin.post("/api/admin/bans", json={"username": "bob", "reason": "abuse"})
    assert banned.status_code == 204, banned.text
    for socket in sockets:
        code, reason = await _closed(socket)
        assert (code, reason) == (BANNED_CLOSE_CODE, "you are banned for good")
    assert (await bob.get("/api/me")).status_code == 401
    async with two.client() as bot:
        answer = await bot.get("/api/me", headers={"Authorization": f"Bearer {secret}"})
        assert answer.status_code == 401
        login = await bot.post("/api/login", json={"username": "bob", "password": PASSWORD})
        assert login.status_code == 403 and api_error(login)["code"] == "banned"
        wrong = await bot.post("/api/login", json={"username": "bob", "password": "x" * 12})
        assert api_error(wrong)["code"] == "bad_credentials"  # no word of a ban without it

        users = (await admin.get("/api/admin/users", params={"q": "bo"})).json()["users"]
        assert [(u["username"], u["banned"], u["banned_until"]) for u in users] == [
            ("bob", True, None)
        ]
        assert (await admin.delete("/api/admin/bans/bob")).status_code == 204
        login = await bot.post("/api/login", json={"username": "bob", "password": PASSWORD})
        assert login.status_code == 200, login.text
        # The tokens ended with the ban stay ended.
        answer = await bot.get("/api/me", headers={"Authorization": f"Bearer {secret}"})
        assert answer.status_code == 401
    users = (await admin.get("/api/admin/users")).json()["users"]
    assert [(u["username"], u["is_admin"], u["banned"]) for u in users] == [
        ("bob", False, False),
        ("root", True, False),
    ]


async def test_only_owners_and_admins_moderate_and_never_an_admin_or_themselves(
    chat_app: StartApp, signed_up: SignUp
) -> None:
    node = await chat_app(settings=SETTINGS)
    admin = await signed_up(node, "root")
    owner, bob, carol = [await signed_up(node, n) for n in ("olga", "bob", "carol")]
    await _den(owner, bob, carol)
    mute = {"username": "bob", "duration_s": HOUR}

    async def refused(answer: httpx.Response, status: int, code: str) -> None:
        assert answer.status_code == status, answer.text
        assert api_error(answer)["code"] == code

    await refused(await carol.post("/api/rooms/den/mutes", json=mute), 403, "forbidden")
    await refused(await carol.post("/api/rooms/den/removals", json=mute), 403, "forbidden")
    await refused(await carol.delete("/api/rooms/den/mutes/bob"), 403, "forbidden")
    await refused(await carol.get("/api/rooms/den/moderation"), 403, "forbidden")
    await refused(
        await owner.post("/api/rooms/den/mutes", json={**mute, "username": "root"}),
        403,
        "target_is_admin",
    )
    await refused(
        await admin.post("/api/rooms/den/removals", json={**mute, "username": "olga"}),
        403,
        "target_is_owner",
    )
    await refused(
        await owner.post("/api/rooms/den/mutes", json={**mute, "username": "olga"}),
        409,
        "cannot_moderate_self",
    )
    await refused(
        await owner.post("/api/rooms/den/mutes", json={**mute, "username": "nobody"}),
        404,
        "user_not_found",
    )
    await refused(
        await owner.post("/api/rooms/den/mutes", json={**mute, "duration_s": 5}),
        422,
        "invalid_duration",
    )
    await refused(
        await owner.post("/api/rooms/den/mutes", json={"username": "bob"}),
        422,
        "invalid_duration_s",
    )
    await refused(
        await owner.post(
            "/api/rooms/den/mutes", json=mute, headers={"Origin": "https://evil.example"}
        ),
        403,
        "forbidden_origin",
    )
    await refused(await owner.post("/api/rooms/nowhere/mutes", json=mute), 404, "room_not_found")
    await refused(await owner.post("/api/admin/bans", json={"username": "bob"}), 403, "forbidden")
    await refused(await owner.get("/api/admin/users"), 403, "forbidden")
    await refused(await owner.get("/api/admin/moderation"), 403, "forbidden")
    await refused(
        await admin.post("/api/admin/bans", json={"username": "root"}),
        409,
        "cannot_moderate_self",
    )
    # An admin moderates any room, even one they are not in.
    assert (await admin.post("/api/rooms/den/mutes", json=mute)).status_code == 200


async def test_the_log_keeps_every_action_newest_first(
    engine: AsyncEngine, chat_app: StartApp, signed_up: SignUp
) -> None:
    node = await chat_app(settings=SETTINGS)
    admin = await signed_up(node, "root")
    owner, bob = await signed_up(node, "olga"), await signed_up(node, "bob")
    await _den(owner, bob)
    mute = {"username": "bob", "duration_s": HOUR, "reason": "shouting"}
    assert (await owner.post("/api/rooms/den/mutes", json=mute)).status_code == 200
    assert (await owner.delete("/api/rooms/den/mutes/bob")).status_code == 204
    assert (await owner.post("/api/rooms/den/removals", json=mute)).status_code == 200
    ban = {"username": "bob", "duration_s": 2 * HOUR, "reason": "again"}
    assert (await admin.post("/api/admin/bans", json=ban)).status_code == 204
    assert (await admin.delete("/api/admin/bans/bob")).status_code == 204
    # Other code records its own actions (a moderation delete, in its transaction).
    ids = {u["username"]: u["id"] for u in (await admin.get("/api/admin/users")).json()["users"]}
    async with engine.begin() as conn:
        await record_action(
            conn,
            Action.DELETE,
            actor_id=ids["olga"],
            target_id=ids["bob"],
            message_id="1700000000000-0",
            reason="off topic",
        )

    first = (await admin.get("/api/admin/moderation", params={"limit": 4})).json()
    rest = (
        await admin.get("/api/admin/moderation", params={"before": first["next_cursor"]})
    ).json()
    assert rest["next_cursor"] is None
    entries = first["entries"] + rest["entries"]
    assert [(e["action"], e["actor"]["username"], e["room"]) for e in entries] == [
        ("delete", "olga", None),
        ("unban", "root", None),
        ("ban", "root", None),
        ("remove", "olga", "den"),
        ("unmute", "olga", "den"),
        ("mute", "olga", "den"),
    ]
    assert {e["target"]["username"] for e in entries} == {"bob"}
    assert entries[0]["message_id"] == "1700000000000-0"
    assert entries[2]["reason"] == "again" and entries[2]["until"].endswith("Z")
    assert entries[5]["reason"] == "shouting" and entries[1]["until"] is None
    assert len((await ModerationLog(engine).recent(limit=10)).entries) == 6
    with pytest.raises(ValueError, match="unknown moderation action"):
        async with engine.begin() as conn:
            await record_action(conn, "exile", actor_id=ids["olga"])


async def test_a_mute_or_a_ban_whose_time_is_over_holds_no_more(
    engine: AsyncEngine, chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    node = await chat_app(settings=SETTINGS)
    admin_http = await signed_up(node, "root")
    owner, bob = await signed_up(node, "olga"), await signed_up(node, "bob")
    await _den(owner, bob)
    accounts, directory = node.state.accounts, node.state.rooms
    root, olga = await accounts.find("root"), await accounts.find("olga")
    target = await accounts.find("bob")
    room = await directory.find("den")
    assert room is not None
    restrictions = RoomRestrictions(engine)
    # Stored as SQL would hold one made an hour ago for an hour less a second.
    past = int(time.time() * 1000) - 1000
    ended = await restrictions.restrict(olga, room, target, MUTE, past, "")
    await node.state.hub.restricted(ended)
    assert await restrictions.in_force() == []
    assert await restrictions.in_room(room) == []
    socket = await chat_socket(node, bob)
    await socket.subscribe("den")
    assert (await _send(socket, "b1"))["type"] == "ack"

    await accounts.bans.ban(root, target, past, "")
    assert await accounts.bans.active(target.id) is None
    users = (await admin_http.get("/api/admin/users", params={"q": "bob"})).json()["users"]
    assert users[0]["banned"] is False
    async with node.client() as again:
        login = await again.post("/api/login", json={"username": "bob", "password": PASSWORD})
        assert login.status_code == 200, login.text
