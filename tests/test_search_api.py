"""GET /api/search and the permalink page GET /api/rooms/{slug}/messages?around=<id>, on
both engines: messages sent over the socket and archived, found only by those who can
see their room; pages around a message in the stream, in SQL, and across the seam."""

from __future__ import annotations

from typing import Any

import httpx
from redis.asyncio import Redis

from chat_servers import api_error
from chatroom import redis_keys
from conftest import OpenSocket, SignUp, StartApp
from test_archiver_support import Archivers
from ws_clients import ChatSocket


async def _send(socket: ChatSocket, body: str, client_id: str, room: str = "lobby") -> str:
    await socket.send({"type": "send", "room": room, "body": body, "client_id": client_id})
    return str((await socket.next("ack"))["id"])


async def _search(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    answer = await client.get("/api/search", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _ids(found: dict[str, Any]) -> list[str]:
    return [hit["message"]["id"] for hit in found["results"]]


async def test_search_finds_only_what_the_caller_can_see(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket, archivers: Archivers
) -> None:
    node = await chat_app()
    ann_http, bob_http, eve_http = [await signed_up(node, n) for n in ("ann", "bob", "eve")]
    created = await ann_http.post(
        "/api/rooms", json={"slug": "vault", "title": "Vault", "private": True}
    )
    assert created.status_code == 201
    assert (
        await ann_http.post("/api/rooms/vault/members", json={"username": "bob"})
    ).status_code == 204
    dm = (await ann_http.post("/api/dms", json={"usernames": ["bob"]})).json()["room"]["slug"]
    ann = await chat_socket(node, ann_http)
    in_lobby = await _send(ann, "Quarterly numbers look fine", "c1")
    in_vault = await _send(ann, "quarterly numbers, the real ones", "c2", room="vault")
    in_dm = await _send(ann, "quarterly numbers between us", "c3", room=dm)
    await archivers.new().drain()

    found = await _search(bob_http, q="quarterly")
    assert set(_ids(found)) == {in_lobby, in_vault, in_dm} and found["next_cursor"] is None
    by_id = {hit["message"]["id"]: hit for hit in found["results"]}
    hit = by_id[in_vault]
    assert hit["room"] == {"slug": "vault", "title": "Vault", "private": True, "kind": "room"}
    assert hit["message"]["user"]["username"] == "ann" and hit["message"]["room"] == "vault"
    assert hit["highlights"] == [[0, 9]]
    assert by_id[in_dm]["room"]["kind"] == "dm"
    assert _ids(await _search(eve_http, q="quarterly numbers")) == [in_lobby]
    assert _ids(await _search(bob_http, q="quarterly", room="vault")) == [in_vault]
    # A room the caller cannot see is not found, exactly as one that does not exist.
    for room in ("vault", dm, "nowhere"):
        answer = await eve_http.get("/api/search", params={"q": "quarterly", "room": room})
        assert answer.status_code == 404 and api_error(answer)["code"] == "room_not_found"
    # Leaving (being removed from) a private room ends finding its messages.
    assert (await ann_http.delete("/api/rooms/vault/members/bob")).status_code == 204
    assert set(_ids(await _search(bob_http, q="quarterly"))) == {in_lobby, in_dm}


async def test_search_pages_and_refuses_bad_input_with_json(
    chat_app: StartApp, signed_up: SignUp, chat_socket: OpenSocket, archivers: Archivers
) -> None:
    node = await chat_app(settings={"searches_per_minute": "9"})
    ann_http = await signed_up(node, "ann")
    ann = await chat_socket(node, ann_http)
    sent = [await _send(ann, f"weekly sync notes {i}", f"w{i}") for i in range(5)]
    await archivers.new().drain()
    seen: list[str] = []
    params: dict[str, Any] = {"q": "weekly sync", "limit": 2}
    while True:
        page = await _search(ann_http, **params)
        seen += _ids(page)
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == sent[::-1]  # equally good: newest first
    for params in (
        {"q": ""},
        {"q": "+-()*"},
        {"q": "x" * 101},
        {"q": "weekly", "cursor": "forged"},
        {"q": "weekly", "limit": 0},
        {"q": "weekly", "limit": 51},
        {},
    ):
        answer = await ann_http.get("/api/search", params=params)
        assert answer.status_code == 422, params
        assert set(answer.json()) == {"error"}, answer.text
    # Searches count per user per minute (those refused above did not reach the count).
    answer = await ann_http.get("/api/search", params={"q": "weekly"})
    while answer.status_code == 200:
        answer = await ann_http.get("/api/search", params={"q": "weekly"})
    assert answer.status_code == 429 and api_error(answer)["code"] == "search_throttled"
    assert int(answer.headers["retry-after"]) >= 1
    unauthenticated = await httpx.AsyncClient(base_url=node.url).__aenter__()
    try:
        answer = await unauthenticated.get("/api/search", params={"q": "weekly"})
        assert answer.status_code == 401 and api_error(answer)["code"] == "not_authenticated"
    finally:
        await unauthenticated.aclose()


async def _around(client: httpx.AsyncClient, room: str, target: str, limit: int) -> dict[str, Any]:
    answer = await client.get(
        f"/api/rooms/{room}/messages", params={"around": target, "limit": limit}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_the_page_around_a_message_in_the_stream_in_sql_and_across_the_seam(
    chat_app: StartApp,
    signed_up: SignUp,
    chat_socket: OpenSocket,
    archivers: Archivers,
    redis: Redis,
) -> None:
    node = await chat_app()
    ann_http, eve_http = await signed_up(node, "ann"), await signed_up(node, "eve")
    ann = await chat_socket(node, ann_http)
    archived = [await _send(ann, f"old {i}", f"o{i}") for i in range(10)]
    await archivers.new(archiver_hot_window=0).drain()  # archived and trimmed: SQL only
    assert await redis.xlen(redis_keys.room_stream("lobby")) == 0
    fresh = [await _send(ann, f"new {i}", f"n{i}") for i in range(10)]  # the stream only
    every = archived + fresh

    def window(page: dict[str, Any]) -> list[str]:
        return [m["id"] for m in page["messages"]]

    in_sql = await _around(ann_http, "lobby", archived[4], 5)
    assert window(in_sql) == every[2:7] and in_sql["has_more"] and in_sql["has_newer"]
    in_stream = await _around(ann_http, "lobby", fresh[5], 5)
    assert window(in_stream) == every[13:18]
    seam = await _around(ann_http, "lobby", archived[-1], 6)
    assert window(seam) == every[7:13]
    first = await _around(ann_http, "lobby", archived[0], 4)
    assert window(first) == every[0:4] and not first["has_more"] and first["has_newer"]
    last = await _around(ann_http, "lobby", fresh[-1], 4)
    assert window(last) == every[-4:] and last["has_more"] and not last["has_newer"]
    assert window(await _around(ann_http, "lobby", fresh[0], 1)) == [fresh[0]]
    assert [m["body"] for m in seam["messages"]][2:4] == ["old 9", "new 0"]

    absent = every[3].split("-")[0] + "-99"
    answer = await ann_http.get("/api/rooms/lobby/messages", params={"around": absent})
    assert answer.status_code == 404 and api_error(answer)["code"] == "message_not_found"
    for params in ({"around": "soon"}, {"around": every[3], "before": every[5]}):
        answer = await ann_http.get("/api/rooms/lobby/messages", params=params)
        assert answer.status_code == 422 and set(answer.json()) == {"error"}
    # Authorised like history: a private room's permalink is not found by outsiders.
    await ann_http.post("/api/rooms", json={"slug": "inner", "title": "Inner", "private": True})
    secret = await _send(ann, "inner thoughts", "s1", room="inner")
    assert window(await _around(ann_http, "inner", secret, 10)) == [secret]
    answer = await eve_http.get("/api/rooms/inner/messages", params={"around": secret})
    assert answer.status_code == 404 and api_error(answer)["code"] == "room_not_found"
