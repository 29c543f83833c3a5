"""How many rooms a user may make, and the directory of rooms everyone pages through:
over HTTP, on app nodes in the test's process."""

from __future__ import annotations

import httpx

from chat_servers import api_error
from conftest import SignUp, StartApp


async def _page(client: httpx.AsyncClient, **query: str) -> dict[str, object]:
    answer = await client.get("/api/rooms", params=query)
    assert answer.status_code == 200, answer.text
    page: dict[str, object] = answer.json()
    return page


def _slugs(page: dict[str, object]) -> list[str]:
    rooms = page["rooms"]
    assert isinstance(rooms, list)
    return [room["slug"] for room in rooms]


async def test_room_creation_is_rate_limited_and_bounded_per_user(
    chat_app: StartApp, signed_up: SignUp
) -> None:
    node = await chat_app(settings={"room_creations_per_hour": "4", "rooms_per_user_max": "2"})
    admin = await signed_up(node, "root")  # the first account is the admin: no limits
    maker = await signed_up(node, "maker")
    for slug in ("room-a", "room-b"):
        made = await maker.post("/api/rooms", json={"slug": slug, "title": slug})
        assert made.status_code == 201
    over = await maker.post("/api/rooms", json={"slug": "room-c", "title": "c"})
    assert over.status_code == 403 and api_error(over)["code"] == "room_quota_exceeded"
    again = await maker.post("/api/rooms", json={"slug": "room-a", "title": "a"})
    assert again.status_code == 403
    # Four attempts an hour, whatever became of them.
    throttled = await maker.post("/api/rooms", json={"slug": "room-d", "title": "d"})
    assert throttled.status_code == 429
    assert api_error(throttled)["code"] == "room_creation_throttled"
    assert int(throttled.headers["Retry-After"]) > 0
    for number in range(6):
        made = await admin.post("/api/rooms", json={"slug": f"admin-{number}", "title": "x"})
        assert made.status_code == 201


async def test_a_taken_name_is_found_only_at_the_creation_rate(
    chat_app: StartApp, signed_up: SignUp
) -> None:
    node = await chat_app(settings={"room_creations_per_hour": "3"})
    await signed_up(node, "root")
    owner, prober = await signed_up(node, "owner"), await signed_up(node, "prober")
    for slug, private in (("hidden", True), ("shown", False)):
        room = {"slug": slug, "title": slug, "private": private}
        made = await owner.post("/api/rooms", json=room)
        assert made.status_code == 201
    # A private room's name and a public room's answer alike: taken, nothing more.
    hidden = await prober.post("/api/rooms", json={"slug": "hidden", "title": "x"})
    shown = await prober.post("/api/rooms", json={"slug": "shown", "title": "x"})
    assert hidden.status_code == shown.status_code == 409
    assert api_error(hidden) == {
        "code": "room_exists",
        "message": api_error(shown)["message"].replace("shown", "hidden"),
    }
    # Probing names one after another is a creation each: it stops at the limit.
    await prober.post("/api/rooms", json={"slug": "guess-1", "title": "x"})
    probe = await prober.post("/api/rooms", json={"slug": "hidden", "title": "x"})
    assert probe.status_code == 429


async def test_the_room_directory_pages_and_searches(chat_app: StartApp, signed_up: SignUp) -> None:
    node = await chat_app()
    admin = await signed_up(node, "root")
    reader = await signed_up(node, "reader")
    titles = {
        "alpha": "Alpha",
        "book-club": "Readers",
        "chess": "Chess CLUB",
        "dance": "Dance",
        "echo": "Echo",
    }
    for slug, title in titles.items():
        assert (await admin.post("/api/rooms", json={"slug": slug, "title": title})).is_success
    secret = {"slug": "club-secret", "title": "Club", "private": True}
    assert (await admin.post("/api/rooms", json=secret)).is_success

    # Paging by slug through what the reader may see: every public room, once each.
    seen: list[str] = []
    query = {"limit": "2"}
    while True:
        page = await _page(reader, **query)
        seen += _slugs(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
        query = {"limit": "2", "cursor": cursor}
    assert seen == ["alpha", "book-club", "chess", "dance", "echo", "lobby"]

    # Searching slugs and titles, any case; a private room stays out of strangers' sight.
    assert _slugs(await _page(reader, q="club")) == ["book-club", "chess"]
    assert _slugs(await _page(admin, q="CLUB")) == ["book-club", "chess", "club-secret"]
    assert _slugs(await _page(reader, q="ess", limit="1")) == ["chess"]
    assert _slugs(await _page(reader, q="100%_")) == []  # a pattern is plain text
    # The sidebar: the rooms one joined.
    assert (await reader.post("/api/rooms/dance/join")).status_code == 204
    assert _slugs(await _page(reader, joined="true")) == ["dance", "lobby"]

    for query, code in (
        ({"cursor": "Not a slug"}, "invalid_cursor"),
        ({"limit": "201"}, "invalid_limit"),
        ({"q": "x" * 65}, "invalid_q"),
        ({"q": "a\u202eb"}, "invalid_q"),
    ):
        answer = await reader.get("/api/rooms", params=query)
        assert answer.status_code == 422 and api_error(answer)["code"] == code, query
