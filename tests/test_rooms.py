"""Rooms over HTTP, on app nodes in the test's process (the API needs no process of its
own; the real `chatroom serve` is proven in test_accounts, test_http_api and test_ws):
public and private rooms, members, join and leave, and private rooms closed to
non-members on every path."""

from __future__ import annotations

import re

import httpx

from chat_servers import api_error
from conftest import SignUp, StartApp


async def _slugs(client: httpx.AsyncClient) -> list[str]:
    answer = await client.get("/api/rooms")
    assert answer.status_code == 200
    return [room["slug"] for room in answer.json()["rooms"]]


async def test_lobby_create_list_join_leave(chat_app: StartApp, signed_up: SignUp) -> None:
    node = await chat_app()
    owner, other = await signed_up(node, "olga"), await signed_up(node, "pete")
    listed = (await owner.get("/api/rooms")).json()
    lobby_read = listed["rooms"][0].pop("last_read")  # read state: test_read_state.py
    assert lobby_read is not None
    assert listed == {
        "rooms": [
            {
                "slug": "lobby",
                "title": "Lobby",
                "private": False,
                "online": 0,
                "joined": True,  # everyone joins the lobby at registration
                "owned": False,
                "kind": "room",
                "members": None,
                "unread": 0,
                "unread_more": False,
                "mentions": 0,
            }
        ],
        "next_cursor": None,
    }
    made = await owner.post("/api/rooms", json={"slug": "book-club", "title": "  Book club 📚 "})
    assert made.status_code == 201
    made_room = made.json()
    assert made_room["room"].pop("last_read") is not None
    assert made_room == {
        "room": {
            "slug": "book-club",
            "title": "Book club 📚",
            "private": False,
            "online": 0,
            "joined": True,
            "owned": True,
            "kind": "room",
            "members": None,
            "unread": 0,
            "unread_more": False,
            "mentions": 0,
        }
    }
    again = await other.post("/api/rooms", json={"slug": "book-club", "title": "Mine"})
    assert again.status_code == 409 and api_error(again)["code"] == "room_exists"
    lobby = await other.post("/api/rooms", json={"slug": "lobby", "title": "Mine"})
    assert lobby.status_code == 409
    for body, code in [
        ({"slug": "Book", "title": "x"}, "invalid_slug"),
        ({"slug": "-book", "title": "x"}, "invalid_slug"),
        ({"slug": "b", "title": "x"}, "invalid_slug"),
        ({"slug": "a" * 33, "title": "x"}, "invalid_slug"),
        ({"slug": "ok-room", "title": "   "}, "invalid_title"),
        ({"slug": "ok-room", "title": "x" * 129}, "invalid_title"),
        ({"slug": "ok-room", "title": "Lobby\u202e"}, "invalid_title"),
        ({"slug": "ok-room"}, "invalid_title"),
        ({"slug": "ok-room", "title": "x", "private": "maybe"}, "invalid_private"),
    ]:
        answer = await owner.post("/api/rooms", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert api_error(answer)["code"] == code, (body, answer.text)

    # A public room: anyone sees it, joins it and leaves it.
    seen = {r["slug"]: r for r in (await other.get("/api/rooms")).json()["rooms"]}
    assert seen["book-club"]["joined"] is False and seen["book-club"]["owned"] is False
    assert (await other.post("/api/rooms/book-club/join")).status_code == 204
    assert (await other.post("/api/rooms/book-club/join")).status_code == 204
    room = (await other.get("/api/rooms/book-club")).json()["room"]
    assert room["joined"] is True
    members = (await other.get("/api/rooms/book-club/members")).json()["members"]
    assert [m["username"] for m in members] == ["olga", "pete"]
    assert (await other.post("/api/rooms/book-club/leave")).status_code == 204
    room = (await other.get("/api/rooms/book-club")).json()["room"]
    assert room["joined"] is False
    # The owner manages members of private rooms only.
    public = await owner.post("/api/rooms/book-club/members", json={"username": "pete"})
    assert public.status_code == 409 and api_error(public)["code"] == "room_is_public"
    unknown = await owner.get("/api/rooms/no-such-room")
    assert unknown.status_code == 404 and api_error(unknown)["code"] == "room_not_found"
    assert (await owner.post("/api/rooms/no-such-room/join")).status_code == 404


async def test_a_room_without_a_slug_gets_one_from_its_title_in_any_script(
    chat_app: StartApp, signed_up: SignUp
) -> None:
    node = await chat_app()
    owner = await signed_up(node, "tess")
    latin = await owner.post("/api/rooms", json={"title": "Café Crème"})
    assert latin.status_code == 201 and latin.json()["room"]["slug"] == "cafe-creme"
    chinese = await owner.post("/api/rooms", json={"title": "产品讨论", "slug": ""})
    assert chinese.status_code == 201, chinese.text
    slug = chinese.json()["room"]["slug"]
    assert re.fullmatch(r"room-[a-z0-9]{6}", slug), slug
    assert chinese.json()["room"]["title"] == "产品讨论"
    # A suggested slug that is taken: a random one, not a 409.
    again = await owner.post("/api/rooms", json={"title": "Cafe creme"})
    assert again.status_code == 201
    assert re.fullmatch(r"room-[a-z0-9]{6}", again.json()["room"]["slug"])
    assert {slug, "cafe-creme"} <= set(await _slugs(owner))


async def test_private_room_members(chat_app: StartApp, signed_up: SignUp) -> None:
    node = await chat_app()
    owner, member, outsider = [await signed_up(node, n) for n in ("quinn", "rita", "sam")]
    made = await owner.post(
        "/api/rooms", json={"slug": "secret", "title": "Secret", "private": True}
    )
    assert made.status_code == 201 and made.json()["room"]["private"] is True
    assert "secret" in await _slugs(owner)
    assert "secret" not in await _slugs(member)

    added = await owner.post("/api/rooms/secret/members", json={"username": "RITA"})
    assert added.status_code == 204
    assert "secret" in await _slugs(member)
    assert (await member.get("/api/rooms/secret")).json()["room"]["joined"] is True
    again = await owner.post("/api/rooms/secret/members", json={"username": "rita"})
    assert again.status_code == 204
    bad = await owner.post("/api/rooms/secret/members", json={"username": "no such name"})
    assert bad.status_code == 422 and api_error(bad)["code"] == "invalid_username"

    # A member who is not the owner cannot manage the list.
    refused = await member.post("/api/rooms/secret/members", json={"username": "sam"})
    assert refused.status_code == 403 and api_error(refused)["code"] == "forbidden"
    assert "secret" not in await _slugs(outsider)
    refused = await member.delete("/api/rooms/secret/members/quinn")
    assert refused.status_code == 403
    # The owner stays: they cannot be removed, nor leave.
    kept = await owner.delete("/api/rooms/secret/members/quinn")
    assert kept.status_code == 409 and api_error(kept)["code"] == "owner_cannot_leave"
    assert (await owner.post("/api/rooms/secret/leave")).status_code == 409

    removed = await owner.delete("/api/rooms/secret/members/rita")
    assert removed.status_code == 204
    assert "secret" not in await _slugs(member)
    gone = await member.get("/api/rooms/secret/messages")
    assert gone.status_code == 404

    # A member may leave; then the room is closed to them.
    await owner.post("/api/rooms/secret/members", json={"username": "rita"})
    assert (await member.post("/api/rooms/secret/leave")).status_code == 204
    assert (await member.get("/api/rooms/secret")).status_code == 404


async def test_private_room_is_404_on_every_path(chat_app: StartApp, signed_up: SignUp) -> None:
    node = await chat_app()
    owner, outsider = await signed_up(node, "tara"), await signed_up(node, "uma")
    await owner.post("/api/rooms", json={"slug": "hidden", "title": "Hidden", "private": True})
    await owner.post("/api/rooms", json={"slug": "open", "title": "Open"})
    requests: list[tuple[str, str, dict[str, object] | None]] = [
        ("GET", "/api/rooms/{}", None),
        ("POST", "/api/rooms/{}/join", None),
        ("POST", "/api/rooms/{}/leave", None),
        ("GET", "/api/rooms/{}/members", None),
        ("POST", "/api/rooms/{}/members", {"username": "uma"}),
        ("DELETE", "/api/rooms/{}/members/tara", None),
        ("GET", "/api/rooms/{}/online", None),
        ("GET", "/api/rooms/{}/messages", None),
        ("GET", "/api/rooms/{}/messages?limit=10", None),
        ("GET", "/api/rooms/{}/messages?before=1-0", None),
        ("GET", "/api/rooms/{}/messages?after=0-0&limit=200", None),
    ]
    for method, path, body in requests:
        hidden = await outsider.request(method, path.format("hidden"), json=body)
        missing = await outsider.request(method, path.format("no-such"), json=body)
        # Indistinguishable from a room that does not exist.
        assert hidden.status_code == 404, (method, path, hidden.text)
        assert hidden.json() == missing.json() | {
            "error": {
                **missing.json()["error"],
                "message": hidden.json()["error"]["message"],
            }
        }
        assert api_error(hidden)["code"] == "room_not_found"
        # The owner sees the room on every one of these paths.
        seen = await owner.request(method, path.format("hidden"), json=None)
        assert seen.status_code != 404 or "members/tara" in path, (path, seen.text)
    # An outsider's requests changed nothing: still not a member.
    members = (await owner.get("/api/rooms/hidden/members")).json()["members"]
    assert [m["username"] for m in members] == ["tara"]
    assert "hidden" not in await _slugs(outsider)
    # Without a login nothing about rooms is answered.
    async with node.client() as anonymous:
        for path in ("/api/rooms", "/api/rooms/hidden", "/api/rooms/open/messages"):
            answer = await anonymous.get(path)
            assert answer.status_code == 401, path


async def test_member_lists_page_and_tell_no_one_who_is_an_admin(
    chat_app: StartApp, signed_up: SignUp
) -> None:
    node = await chat_app()
    admin = await signed_up(node, "Zoe")  # the first user: the admin
    names = ["Zoe", *(f"user{n:02d}" for n in range(11))]
    for name in names[1:]:
        await signed_up(node, name, log_in=False)
    first = (await admin.get("/api/rooms/lobby/members?limit=5")).json()
    assert first["has_more"] is True and len(first["members"]) == 5
    # Nobody's record in a member list says who is an admin: only /api/me does.
    assert all(set(member) == {"id", "username", "display_name"} for member in first["members"])
    assert (await admin.get("/api/me")).json()["user"]["is_admin"] is True
    # Walk every page: each member once, by username whatever the case.
    seen, after = list(first["members"]), first["members"][-1]["username"]
    while True:
        page = (await admin.get(f"/api/rooms/lobby/members?limit=5&after={after}")).json()
        seen += page["members"]
        if not page["has_more"]:
            break
        after = page["members"][-1]["username"]
    assert [m["username"] for m in seen] == sorted(names, key=str.lower)
    whole = (await admin.get("/api/rooms/lobby/members")).json()
    assert len(whole["members"]) == 12 and whole["has_more"] is False
    for query, code in [
        ("limit=0", "invalid_limit"),
        ("limit=501", "invalid_limit"),
        ("after=no%20such%20name", "invalid_after"),
    ]:
        refused = await admin.get(f"/api/rooms/lobby/members?{query}")
        assert refused.status_code == 422 and api_error(refused)["code"] == code, query


async def test_adding_a_member_says_nothing_about_who_exists_and_is_rate_limited(
    chat_app: StartApp, signed_up: SignUp
) -> None:
    node = await chat_app(settings={"member_changes_per_hour": "4"})
    owner, _ = await signed_up(node, "vera"), await signed_up(node, "walt")
    await owner.post("/api/rooms", json={"slug": "den", "title": "Den", "private": True})
    known = await owner.post("/api/rooms/den/members", json={"username": "walt"})
    unknown = await owner.post("/api/rooms/den/members", json={"username": "nobody_here"})
    assert (
        (known.status_code, known.content)
        == (unknown.status_code, unknown.content)
        == (
            204,
            b"",
        )
    )
    gone = await owner.delete("/api/rooms/den/members/walt")
    never = await owner.delete("/api/rooms/den/members/nobody_here")
    assert (gone.status_code, gone.content) == (never.status_code, never.content) == (204, b"")
    # Each try counts, whether the name exists or not: no script tries them all.
    throttled = await owner.post("/api/rooms/den/members", json={"username": "walt"})
    assert throttled.status_code == 429 and api_error(throttled)["code"] == "throttled"
    assert int(throttled.headers["retry-after"]) > 60
    members = (await owner.get("/api/rooms/den/members")).json()["members"]
    assert [m["username"] for m in members] == ["vera"]
