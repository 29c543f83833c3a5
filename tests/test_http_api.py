"""The HTTP API's contract. Against a real `chatroom serve`: history pages over the
stream/SQL seam, hostile text byte-exact through SQL, the metrics of the node and of its
archiver, and the strict persistence check at start-up. On an app node in the test's
process: error bodies, the operations endpoints, the admin status, bad queries and ids,
and the OpenAPI document.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_servers import ChatNode, api_error
from chatroom.archiver.service import Archiver
from chatroom.domain.events import Author, MessageEvent
from chatroom.settings import Settings
from chatroom.streams.writer import StreamWriter
from conftest import Backend, SignUp, StartApp, StartServer
from waiting import wait_until

HOSTILE_BODIES = [
    '<script>alert("pwned")</script><img src=x onerror=alert(1)>',
    "'; DROP TABLE messages; -- \" OR 1=1 /*",
    "Robert'); DELETE FROM users WHERE ('1'='1",
    "4-byte emoji: 😀🦊🏳️‍🌈 👩‍👩‍👧‍👦 𝄞 𠜎",
    "NUL \x00 inside, bidi \u202egnirts\u202c, zero-width \u200b, combining é",
    "Ünïcödé and 中文 and العربية and\ttabs\nand newlines",
    "\\u0000 and %s and {0} and ${jndi:ldap://x}",
]


async def _append(
    redis: Redis, author: Author, bodies: list[str], *, batch: str = "c"
) -> list[str]:
    writer = StreamWriter(redis, client_id_ttl_s=3600)
    try:
        ids = []
        for number, body in enumerate(bodies):
            event = MessageEvent("lobby", author, body, f"{batch}-{number}")
            appended = await writer.append(event)
            ids.append(str(appended.id))
        return ids
    finally:
        await writer.close()


async def _archive_all(backend: Backend, engine: AsyncEngine) -> int:
    """Move every message into SQL and trim the streams: history must come from SQL."""
    settings = Settings(
        redis_url=backend.redis_url, database_url=backend.database_url, archiver_hot_window=0
    )
    return await Archiver(settings, backend.redis_url, engine).drain()


async def _admin(node: ChatNode, signed_up: SignUp) -> tuple[httpx.AsyncClient, Author]:
    """The first user (an admin), logged in, and the Author their messages carry."""
    client = await signed_up(node, "alice", display_name="Alice")
    user = (await client.get("/api/me")).json()["user"]
    return client, Author(int(user["id"]), "alice", "Alice")


async def test_history_pages_across_stream_and_sql(
    backend: Backend,
    redis: Redis,
    engine: AsyncEngine,
    chat_server: StartServer,
    signed_up: SignUp,
) -> None:
    client, alice = await _admin(await chat_server(), signed_up)
    archived_ids = await _append(redis, alice, [f"old {i}" for i in range(25)])
    assert await _archive_all(backend, engine) == 25
    assert await redis.xlen("chatroom:room:{lobby}:stream") == 0
    live_ids = await _append(redis, alice, [f"new {i}" for i in range(25)], batch="n")
    every_id = archived_ids + live_ids

    latest = (await client.get("/api/rooms/lobby/messages", params={"limit": 10})).json()
    assert [m["id"] for m in latest["messages"]] == every_id[-10:]
    assert latest["has_more"] is True
    message = latest["messages"][-1]
    assert message == {
        "id": every_id[-1],
        "room": "lobby",
        "user": {"id": alice.id, "username": "alice", "display_name": "Alice"},
        "body": "new 24",
        "created_at": message["created_at"],
        "client_id": "n-24",
        "reply_to": None,
        "edited_at": None,
        "deleted": False,
        "reactions": [],
        "reply": None,
    }
    ms = int(every_id[-1].split("-")[0])
    assert message["created_at"].endswith(f".{ms % 1000:03d}Z")

    # Walk back with before=, then forward with after=: every id once, in order.
    seen: list[str] = []
    page = latest
    while True:
        seen = [m["id"] for m in page["messages"]] + seen
        if not page["has_more"]:
            break
        before = page["messages"][0]["id"]
        page = (
            await client.get("/api/rooms/lobby/messages", params={"before": before, "limit": 7})
        ).json()
    assert seen == every_id
    forward: list[str] = []
    after = "0-0"
    while True:
        page = (
            await client.get("/api/rooms/lobby/messages", params={"after": after, "limit": 9})
        ).json()
        forward += [m["id"] for m in page["messages"]]
        if not page["has_more"]:
            break
        after = page["messages"][-1]["id"]
    assert forward == every_id
    default = (await client.get("/api/rooms/lobby/messages")).json()
    assert len(default["messages"]) == 50 and default["has_more"] is False
    most = await client.get("/api/rooms/lobby/messages", params={"limit": 200})
    assert most.status_code == 200


async def test_hostile_text_round_trips_byte_exact_through_sql(
    backend: Backend,
    redis: Redis,
    engine: AsyncEngine,
    chat_server: StartServer,
    signed_up: SignUp,
) -> None:
    client, alice = await _admin(await chat_server(), signed_up)
    # The author's display name is hostile too; SQL history shows the current one.
    await _append(redis, alice, HOSTILE_BODIES)
    from_stream = (await client.get("/api/rooms/lobby/messages")).json()["messages"]
    assert await _archive_all(backend, engine) == len(HOSTILE_BODIES)
    assert await redis.xlen("chatroom:room:{lobby}:stream") == 0
    answer = await client.get("/api/rooms/lobby/messages")
    from_sql = answer.json()["messages"]
    assert [m["body"] for m in from_sql] == HOSTILE_BODIES
    assert from_sql == from_stream
    # The JSON is plain JSON (no HTML escaping is the API's job): byte-exact UTF-8.
    assert answer.headers["content-type"].startswith("application/json")
    for body in HOSTILE_BODIES:
        if "\x00" not in body and "\\" not in body and '"' not in body:
            assert body.replace("\n", "\\n").replace("\t", "\\t").encode() in (answer.content)


async def test_metrics_without_and_with_the_archiver(
    redis: Redis, chat_server: StartServer
) -> None:
    # Real processes: the metrics registry is the process's own, and so are its counts.
    author = Author(1, "alice", "Alice")
    async with (await chat_server()).client() as client:
        await client.get("/api/rooms")
        await _append(redis, author, ["one", "two", "three"])
        text = (await client.get("/metrics")).text
        assert 'chatroom_http_requests_total{method="GET",route="/api/rooms",status="401"}' in text
        assert "chatroom_http_request_duration_seconds_bucket" in text
        assert 'chatroom_archiver_backlog{room="lobby"} 3.0' in text
        assert 'chatroom_archiver_dead_letters_total{room="lobby"} 0.0' in text
        assert "chatroom_ws_connections 0.0" in text
        assert "chatroom_fanout_latency_seconds" in text
        # The raw path of a request never becomes a label: one series per route.
        await client.get("/api/rooms/some-room/messages")
        text = (await client.get("/metrics")).text
        assert 'route="/api/rooms/{slug}/messages"' in text and "some-room" not in text

    async with (await chat_server(archiver=True)).client() as client:

        async def archived_and_no_backlog() -> bool:
            # The in-process archiver's own metrics: rows archived, then the backlog gone.
            text = (await client.get("/metrics")).text
            archived = re.search(
                r'chatroom_archiver_archived_rows_total\{room="lobby"\} 3\.0', text
            )
            return bool(archived) and 'chatroom_archiver_backlog{room="lobby"} 0.0' in text

        await wait_until(archived_and_no_backlog, 20, interval=0.2)


async def test_metrics_never_name_a_private_room_and_can_need_a_token(
    redis: Redis, chat_server: StartServer, signed_up: SignUp
) -> None:
    server = await chat_server(settings={"metrics_token": "scrape-me"})
    owner = await signed_up(server, "owner")
    made = await owner.post("/api/rooms", json={"slug": "hush", "title": "x", "private": True})
    assert made.status_code == 201
    writer = StreamWriter(redis, client_id_ttl_s=3600)
    try:
        for number in range(2):
            await writer.append(MessageEvent("hush", Author(1, "owner", "O"), "s", f"h-{number}"))
    finally:
        await writer.close()
    async with server.client() as client:
        refused = await client.get("/metrics")
        assert refused.status_code == 401
        assert api_error(refused)["code"] == "metrics_token_required"
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401
        answer = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert answer.status_code == 200
        assert 'chatroom_archiver_backlog{room="private"} 2.0' in answer.text
        assert "hush" not in answer.text

    async with (await chat_server(archiver=True)).client() as client:

        async def archived() -> bool:
            text = (await client.get("/metrics")).text
            assert "hush" not in text
            return 'chatroom_archiver_archived_rows_total{room="private"} 2.0' in text

        await wait_until(archived, 20, interval=0.2)


async def test_strict_persistence_refuses_a_redis_that_can_lose_messages(
    backend: Backend, tmp_path: Path, redis: Redis, chat_server: StartServer
) -> None:
    persistent = (await redis.config_get("appendonly")).get("appendonly") in ("yes", b"yes")
    if persistent:  # the embedded Valkey runs with AOF (everysec)
        # Acks after the write alone could lose the last second: strict mode refuses...
        refused = subprocess.run(
            [sys.executable, "-m", "chatroom", "serve", "--no-archiver"],
            env=backend.env()
            | {"CHATROOM_REDIS_REQUIRE_PERSISTENCE": "true", "CHATROOM_ACK_DURABILITY": "write"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
        assert refused.returncode == 1 and "NOT durable" in refused.stderr, refused.stderr
        # ...and acks after the fsync pass, on appendfsync always: the node starts and
        # says so.
        await redis.config_set("appendfsync", "always")
        try:
            server = await chat_server(
                settings={"redis_require_persistence": "true", "ack_durability": "fsync"}
            )
            async with server.client() as client:
                ready = (await client.get("/readyz")).json()
        finally:
            await redis.config_set("appendfsync", "everysec")
        assert ready["persistence"]["appendonly"] is True
        assert ready["persistence"]["durable_against_kill"] is True
        return
    # The machine's Redis runs without AOF: refused with one clear line, no traceback.
    env = backend.env() | {"CHATROOM_REDIS_REQUIRE_PERSISTENCE": "true", "CHATROOM_PORT": "0"}
    run = subprocess.run(
        [sys.executable, "-m", "chatroom", "serve", "--no-archiver"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert run.returncode == 1
    assert "refusing to start" in run.stderr and "Traceback" not in run.stderr, run.stderr


# In the test's process from here: none of these needs a process of its own.


async def test_error_bodies_and_operations(chat_app: StartApp, signed_up: SignUp) -> None:
    node = await chat_app()
    async with node.client() as client:
        for method, path, status, code in [
            ("GET", "/api/no-such-thing", 404, "not_found"),
            ("DELETE", "/api/no-such-thing", 404, "not_found"),
            ("PUT", "/api/me", 405, "method_not_allowed"),
            ("GET", "/api/register", 405, "method_not_allowed"),
            ("POST", "/api/register", 422, "invalid_request"),
            ("GET", "/api/me", 401, "not_authenticated"),
            ("GET", "/api/tokens", 401, "not_authenticated"),
            ("DELETE", "/api/tokens/abc", 401, "not_authenticated"),
            ("GET", "/api/admin/status", 401, "not_authenticated"),
        ]:
            answer = await client.request(method, path)
            assert answer.status_code == status, (method, path, answer.text)
            assert api_error(answer)["code"] == code, (method, path, answer.text)
        assert (await client.put("/api/me")).headers["allow"] == "GET"

        health = await client.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert health.headers["x-content-type-options"] == "nosniff"
        assert health.headers["x-frame-options"] == "DENY"
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "ready" and body["redis"] == "ok" and body["database"] == "ok"
        assert set(body["persistence"]) >= {"appendonly", "persistence_ok", "problems"}
        # Which guarantee an ack carries here, in so many words (invariant 11).
        assert body["persistence"]["ack_durability"] in ("write", "fsync")
        assert body["persistence"]["guarantee"].startswith("ack_durability ")

    admin = await signed_up(node, "root_user")
    plain = await signed_up(node, "plain_user")
    refused = await plain.get("/api/admin/status")
    assert refused.status_code == 403 and api_error(refused)["code"] == "forbidden"
    status = (await admin.get("/api/admin/status")).json()
    assert set(status) == {"rooms", "total", "redis"}
    assert set(status["total"]) >= {
        "stream_length",
        "backlog",
        "pending",
        "archived",
        "dead_letters",
        "oldest_unarchived_age_s",
    }
    assert "lobby" in status["rooms"]

    # Bad ids in paths are 422 or 404, never a server error.
    huge = await admin.delete(f"/api/tokens/{2**70}")
    assert huge.status_code == 422 and api_error(huge)["code"] == "invalid_token_id"
    assert (await admin.delete("/api/tokens/0")).status_code == 422
    assert (await admin.get("/api/rooms/%F0%9F%98%80")).status_code == 404
    assert (await admin.get("/api/rooms/" + "a" * 500)).status_code == 404


async def test_bad_history_queries_are_422_and_unknown_rooms_404(
    chat_app: StartApp, signed_up: SignUp
) -> None:
    client = await signed_up(await chat_app(), "alice")
    for params, code in [
        ({"before": "5-0", "after": "1-0"}, "invalid_query"),
        ({"before": "yesterday"}, "invalid_id"),
        ({"after": "12"}, "invalid_id"),
        ({"after": "1-2-3"}, "invalid_id"),
        ({"before": "18446744073709551615-0"}, "invalid_id"),
        ({"after": "9223372036854775808-0"}, "invalid_id"),
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "201"}, "invalid_limit"),
        ({"limit": "-5"}, "invalid_limit"),
        ({"limit": "ten"}, "invalid_limit"),
    ]:
        answer = await client.get("/api/rooms/lobby/messages", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert api_error(answer)["code"] == code, (params, answer.text)
    unknown = await client.get("/api/rooms/nowhere/messages")
    assert unknown.status_code == 404 and api_error(unknown)["code"] == "room_not_found"


async def test_openapi_documents_every_route(chat_app: StartApp) -> None:
    async with (await chat_app()).client() as client:
        schema = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = schema["paths"]
    contract = {
        ("post", "/api/register"): "201",
        ("post", "/api/login"): "200",
        ("post", "/api/logout"): "204",
        ("get", "/api/me"): "200",
        ("get", "/api/rooms"): "200",
        ("post", "/api/rooms"): "201",
        ("post", "/api/rooms/{slug}/members"): "204",
        ("delete", "/api/rooms/{slug}/members/{username}"): "204",
        ("get", "/api/rooms/{slug}/messages"): "200",
        ("get", "/api/rooms/{slug}/online"): "200",
        ("post", "/api/tokens"): "201",
        ("get", "/api/tokens"): "200",
        ("delete", "/api/tokens/{token_id}"): "204",
        ("get", "/healthz"): "200",
        ("get", "/readyz"): "200",
        ("get", "/metrics"): "200",
        ("post", "/api/rooms/{slug}/join"): "204",
        ("post", "/api/rooms/{slug}/leave"): "204",
        ("get", "/api/admin/status"): "200",
    }
    for (method, path), status in contract.items():
        operation = paths[path][method]
        assert status in operation["responses"], (method, path)
        if status in ("200", "201") and path != "/metrics":
            content = operation["responses"][status]["content"]["application/json"]
            assert content["schema"], (method, path)
        for code, answer in operation["responses"].items():
            if code.startswith(("4", "5")) and code != "422":
                ref = answer["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith(("/ErrorBody", "/Readiness")), (method, path, code)
    # The contract's name rules (PRODUCT.md section 5), as the schema shows them.
    shapes = schema["components"]["schemas"]
    username = shapes["RegisterRequest"]["properties"]["username"]
    assert username["pattern"] == "^[A-Za-z0-9_]{3,32}$"
    assert shapes["CreateRoomRequest"]["properties"]["slug"]["pattern"] == (
        "^[a-z0-9][a-z0-9-]{1,31}$"
    )
