"""Live membership and direct conversations, on two app nodes in the test's process (one
Redis, one SQL), on both engines: `room` frames reach a user's sockets on every node when
their rooms change (added, removed, joined, left, a new public room), a removal ends the
subscription with a `forbidden` that names the room, and direct conversations are private
rooms of their own namespace, found again, between their people only."""

from __future__ import annotations

from typing import Any

import httpx

from chat_servers import api_error
from chatroom.domain.rules import is_room_name
from chatroom.rooms.direct import dm_slug
from conftest import OpenSocket, SignUp, StartApp
from ws_clients import ChatSocket


async def _room_frame(socket: ChatSocket) -> dict[str, Any]:
    frame = await socket.next("room")
    return {"event": frame["event"], "slug": frame["room"]["slug"], "room": frame["room"]}


async def test_room_events_reach_the_users_sockets_on_every_node(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    one, two = await chat_app(), await chat_app()
    olga_http, pete_http = await signed_up(one, "olga"), await signed_up(one, "pete")
    pete = await chat_socket(two, pete_http)  # Pete is on the other node
    pete_laptop = await chat_socket(one, pete_http)

    made = await olga_http.post(
        "/api/rooms", json={"slug": "hideout", "title": "Hideout", "private": True}
    )
    assert made.status_code == 201
    added = await olga_http.post("/api/rooms/hideout/members", json={"username": "Pete"})
    assert added.status_code == 204
    seen = await _room_frame(pete)
    assert (seen["event"], seen["slug"], seen["room"]["joined"]) == ("added", "hideout", True)
    assert seen["room"]["title"] == "Hideout" and seen["room"]["owned"] is False
    assert (await _room_frame(pete_laptop))["event"] == "added"
    # Adding him again is no news.
    await olga_http.post("/api/rooms/hideout/members", json={"username": "pete"})

    # A new public room: everyone hears of it, its creator as joined.
    await olga_http.post("/api/rooms", json={"slug": "plaza", "title": "Plaza"})
    seen = await _room_frame(pete)
    assert (seen["event"], seen["slug"], seen["room"]["joined"]) == ("created", "plaza", False)
    # Joining on one device is heard on the other; so is leaving.
    assert (await pete_http.post("/api/rooms/plaza/join")).status_code == 204
    assert (await _room_frame(pete))["event"] == "joined"
    assert (await pete_http.post("/api/rooms/plaza/leave")).status_code == 204
    assert (await _room_frame(pete))["event"] == "left"

    # Removed while subscribed: told (`removed`), then the subscription ends naming the room.
    await pete.subscribe("hideout")
    removed = await olga_http.delete("/api/rooms/hideout/members/pete")
    assert removed.status_code == 204
    seen = await _room_frame(pete)
    assert (seen["event"], seen["slug"], seen["room"]["joined"]) == ("removed", "hideout", False)
    refused = await pete.next("error")
    assert (refused["code"], refused["room"]) == ("forbidden", "hideout")
    assert await pete.next("unsubscribed") == {"type": "unsubscribed", "room": "hideout"}
    await pete.send({"type": "send", "room": "hideout", "body": "still here?", "client_id": "p"})
    assert (await pete.next("error"))["code"] == "room_not_found"


async def _start(client: httpx.AsyncClient, *usernames: str) -> httpx.Response:
    return await client.post("/api/dms", json={"usernames": list(usernames)})


async def test_direct_conversations_are_private_found_again_and_apart_from_rooms(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket
) -> None:
    one, two = await chat_app(), await chat_app()
    ann_http, ben_http = await signed_up(one, "ann"), await signed_up(two, "ben")
    cat_http = await signed_up(one, "cat")
    ben = await chat_socket(two, ben_http)

    started = await _start(ann_http, "Ben")
    assert started.status_code == 201, started.text
    room = started.json()["room"]
    slug = room["slug"]
    assert slug.startswith("dm.") and is_room_name(slug)
    assert (room["kind"], room["private"], room["joined"], room["owned"]) == (
        "dm",
        True,
        True,
        False,
    )
    assert [m["username"] for m in room["members"]] == ["ann", "ben"]
    # Ben, on the other node, sees it at once.
    seen = await _room_frame(ben)
    assert (seen["event"], seen["slug"], seen["room"]["kind"]) == ("added", slug, "dm")
    # Started again, by either of them: the same conversation.
    again = await _start(ben_http, "ann")
    assert again.status_code == 200 and again.json()["room"]["slug"] == slug
    assert dm_slug([2, 1]) == dm_slug([1, 2, 2])

    # It is a room for its people: messages, history, read state; no one else sees it.
    await ben.subscribe(slug)
    await ben.send({"type": "send", "room": slug, "body": "hi ann", "client_id": "b1"})
    assert (await ben.next("message"))["body"] == "hi ann"
    listed = {r["slug"]: r for r in (await ann_http.get("/api/rooms")).json()["rooms"]}
    assert listed[slug]["unread"] == 1 and listed[slug]["kind"] == "dm"
    assert slug not in {r["slug"] for r in (await cat_http.get("/api/rooms")).json()["rooms"]}
    assert (await cat_http.get(f"/api/rooms/{slug}/messages")).status_code == 404
    cat = await chat_socket(one, cat_http)
    await cat.send({"type": "subscribe", "room": slug})
    assert (await cat.next("error"))["code"] == "room_not_found"

    # Nobody manages or leaves it; a room cannot take a conversation's name.
    add = await ann_http.post(f"/api/rooms/{slug}/members", json={"username": "cat"})
    assert add.status_code == 403
    leave = await ann_http.post(f"/api/rooms/{slug}/leave")
    assert leave.status_code == 409 and api_error(leave)["code"] == "conversation_cannot_be_left"
    taken = await ann_http.post("/api/rooms", json={"slug": slug, "title": "Mine"})
    assert taken.status_code == 422 and api_error(taken)["code"] == "invalid_slug"

    # A small group; bad requests get clear errors.
    group = await _start(ann_http, "ben", "cat")
    assert group.status_code == 201 and group.json()["room"]["slug"] != slug
    for usernames, status, code in [
        ([], 422, "invalid_usernames"),
        (["ann"], 422, "invalid_usernames"),  # only yourself
        (["bad name"], 422, "invalid_usernames"),
        ([f"user{i}" for i in range(8)], 422, "invalid_usernames"),
        (["nobody"], 404, "user_not_found"),
    ]:
        answer = await _start(ann_http, *usernames)
        assert answer.status_code == status, (usernames, answer.text)
        assert api_error(answer)["code"] == code, (usernames, answer.text)
    bad = await ann_http.post("/api/dms", json={"usernames": "ben"})
    assert bad.status_code == 422
