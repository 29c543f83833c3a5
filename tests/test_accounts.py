"""Accounts over HTTP against a real `chatroom serve`: register, login, logout, me,
sessions shared by nodes, cookies, throttling, and no secrets in the logs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import statistics
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_servers import PASSWORD, login, register, running_server
from chatroom.store.tables import api_tokens
from conftest import Backend


def _session(session_id: str) -> dict[str, str]:
    """Headers presenting a session cookie, whatever the client's own cookie jar holds."""
    return {"cookie": f"chatroom_session={session_id}"}


def _error(answer: httpx.Response) -> dict[str, str]:
    body = answer.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    return dict(body["error"])


async def test_register_login_me_logout(backend: Backend, tmp_path: Path) -> None:
    async with running_server(backend, tmp_path) as server, server.client() as client:
        first = await register(client, "alice", display_name="Alice Ünal 🦊")
        assert first == {
            "id": first["id"],
            "username": "alice",
            "display_name": "Alice Ünal 🦊",
            "is_admin": True,  # the first registered user is the admin
        }
        second = await register(client, "bob")
        assert second["display_name"] == "bob" and second["is_admin"] is False

        me = await client.get("/api/me")
        assert me.status_code == 401 and _error(me)["code"] == "not_authenticated"

        answer = await client.post("/api/login", json={"username": "alice", "password": PASSWORD})
        assert answer.status_code == 200
        assert answer.json() == {"user": first}
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("chatroom_session=")
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=lax", "path=/"} <= flags
        assert "secure" not in flags
        me = await client.get("/api/me")
        limits = {"message_max_chars": 4000}  # extension: what the client checks before a send
        assert me.status_code == 200 and me.json() == {"user": first, "limits": limits}

        # A login ends the session the browser had and gives a new session id.
        old_session = client.cookies["chatroom_session"]
        await login(client, "ALICE")  # usernames are case-insensitive at login
        new_session = client.cookies["chatroom_session"]
        assert new_session != old_session
        stale = await client.get("/api/me", headers=_session(old_session))
        assert stale.status_code == 401

        out = await client.post("/api/logout")
        assert out.status_code == 204
        assert "chatroom_session" not in client.cookies
        # The session is revoked on the server, not only forgotten by the browser.
        replay = await client.get("/api/me", headers=_session(new_session))
        assert replay.status_code == 401


async def test_register_refusals(backend: Backend, tmp_path: Path) -> None:
    async with running_server(backend, tmp_path) as server, server.client() as client:
        # Several "first" users at once: exactly one of them becomes the admin.
        founders = await asyncio.gather(*(register(client, f"founder{i}") for i in range(6)))
        assert sum(bool(user["is_admin"]) for user in founders) == 1
        await register(client, "carol")
        taken = await client.post("/api/register", json={"username": "Carol", "password": PASSWORD})
        assert taken.status_code == 409 and _error(taken)["code"] == "username_taken"
        cases = [
            ({"username": "ab", "password": PASSWORD}, "invalid_username"),
            ({"username": "a" * 33, "password": PASSWORD}, "invalid_username"),
            ({"username": "bad name", "password": PASSWORD}, "invalid_username"),
            ({"username": "trailing\n", "password": PASSWORD}, "invalid_username"),
            ({"username": "dave", "password": "short"}, "invalid_password"),
            ({"username": "dave", "password": "x" * 1025}, "invalid_password"),
            (
                {"username": "dave", "password": PASSWORD, "display_name": ""},
                "invalid_display_name",
            ),
            (
                {"username": "dave", "password": PASSWORD, "display_name": "x" * 65},
                "invalid_display_name",
            ),
            ({"username": "dave"}, "invalid_password"),
            ({"username": 12345, "password": PASSWORD}, "invalid_username"),
        ]
        for body, code in cases:
            answer = await client.post("/api/register", json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert _error(answer)["code"] == code, (body, answer.text)
        not_json = await client.post(
            "/api/register", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 422 and _error(not_json)["code"] == "invalid_json"
        # A form post (what a cross-site page can send without CORS) is not JSON: refused.
        # Names no account can have are refused without a lookup, never a server error.
        for name in ("\ud800abc", "nul\x00name", "x" * 10_000, "carol\n"):
            # json.dumps escapes a lone surrogate as \ud800, as a hostile client may send it.
            body = json.dumps({"username": name, "password": PASSWORD}).encode()
            headers = {"content-type": "application/json"}
            answer = await client.post("/api/login", content=body, headers=headers)
            assert answer.status_code == 401, name
            answer = await client.post("/api/register", content=body, headers=headers)
            assert answer.status_code == 422, name
        form = await client.post("/api/register", data={"username": "erin", "password": PASSWORD})
        assert form.status_code == 422
        assert (
            await client.post("/api/login", json={"username": "erin", "password": PASSWORD})
        ).status_code == 401


async def test_unknown_user_and_wrong_password_look_the_same(
    backend: Backend, tmp_path: Path
) -> None:
    async with running_server(backend, tmp_path) as server, server.client() as client:
        await register(client, "frank")

        async def attempt(username: str) -> tuple[float, httpx.Response]:
            started = time.perf_counter()
            answer = await client.post(
                "/api/login", json={"username": username, "password": "wrong password"}
            )
            return time.perf_counter() - started, answer

        unknown, wrong = [], []
        for _ in range(6):
            took, answer = await attempt("nobody_here")
            unknown.append(took)
            assert answer.status_code == 401
            unknown_body = answer.json()
            took, answer = await attempt("frank")
            wrong.append(took)
            assert answer.status_code == 401
            assert (
                answer.json()
                == unknown_body
                == {"error": {"code": "bad_credentials", "message": "wrong username or password"}}
            )
            assert "set-cookie" not in answer.headers
        # Both run one argon2id verification: the medians are of the same size.
        ratio = statistics.median(unknown) / statistics.median(wrong)
        assert 0.5 < ratio < 2.0, (unknown, wrong)


async def test_login_throttled_per_username_before_hashing(
    backend: Backend, tmp_path: Path
) -> None:
    settings = {"login_attempts_per_minute": "3"}
    async with (
        running_server(backend, tmp_path, settings=settings) as server,
        server.client() as client,
    ):
        await register(client, "grace")

        async def timed_guess(password: str) -> tuple[float, int]:
            started = time.perf_counter()
            answer = await client.post(
                "/api/login", json={"username": "grace", "password": password}
            )
            return time.perf_counter() - started, answer.status_code

        hashed = [await timed_guess(f"guess {i}") for i in range(3)]
        assert {status for _, status in hashed} == {401}
        # The limit holds for the right password too, and for any spelling of the name.
        for name, password in [("grace", PASSWORD), ("GRACE", "guess again")]:
            blocked = await client.post("/api/login", json={"username": name, "password": password})
            assert blocked.status_code == 429
            assert _error(blocked)["code"] == "throttled"
            assert 1 <= int(blocked.headers["retry-after"]) <= 60
        # A throttled guess is cheap: it is refused before any password hash runs.
        throttled = [await timed_guess(f"again {i}") for i in range(9)]
        assert {status for _, status in throttled} == {429}
        hash_time = statistics.median(took for took, _ in hashed)
        assert statistics.median(took for took, _ in throttled) < hash_time / 2
        # A parallel burst gets no further than a sequence.
        burst = await asyncio.gather(*(timed_guess(f"burst {i}") for i in range(30)))
        assert {status for _, status in burst} == {429}
        # Another user is not locked out by grace's attacker.
        await register(client, "heidi")
        await login(client, "heidi")


async def test_login_and_registration_throttled_per_address(
    backend: Backend, tmp_path: Path
) -> None:
    settings = {
        "login_attempts_per_address_per_minute": "4",
        "registrations_per_address_per_hour": "2",
    }
    async with (
        running_server(backend, tmp_path, settings=settings) as server,
        server.client() as client,
    ):
        await register(client, "ivan")
        await register(client, "judy")
        third = await client.post(
            "/api/register", json={"username": "mallory", "password": PASSWORD}
        )
        assert third.status_code == 429 and _error(third)["code"] == "throttled"
        assert int(third.headers["retry-after"]) > 60
        for name in ("u_one", "u_two", "u_three", "ivan"):
            answer = await client.post(
                "/api/login", json={"username": name, "password": "not it at all"}
            )
            assert answer.status_code == 401
        # Spraying many usernames from one address ends in 429 as well.
        sprayed = await client.post("/api/login", json={"username": "judy", "password": PASSWORD})
        assert sprayed.status_code == 429
        assert int(sprayed.headers["retry-after"]) >= 1


async def test_secure_cookie_and_cross_site_requests(backend: Backend, tmp_path: Path) -> None:
    settings = {"cookie_secure": "true", "allowed_origins": "https://chat.example"}
    async with (
        running_server(backend, tmp_path, settings=settings) as server,
        server.client() as client,
    ):
        await register(client, "kim", headers={})
        answer = await client.post("/api/login", json={"username": "kim", "password": PASSWORD})
        flags = {p.strip().lower() for p in answer.headers["set-cookie"].split(";")[1:]}
        assert "secure" in flags
        session = answer.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        evil = {"origin": "https://evil.example", **_session(session)}
        for method, path, body in [
            ("POST", "/api/login", {"username": "kim", "password": PASSWORD}),
            ("POST", "/api/register", {"username": "kim2", "password": PASSWORD}),
            ("POST", "/api/rooms", {"slug": "evil", "title": "Evil"}),
            ("POST", "/api/logout", None),
            ("POST", "/api/tokens", {"name": "stolen"}),
        ]:
            refused = await client.request(method, path, json=body, headers=evil)
            assert refused.status_code == 403, (path, refused.text)
            assert _error(refused)["code"] == "forbidden_origin"
        good = {"origin": "https://chat.example", **_session(session)}
        made = await client.post(
            "/api/rooms",
            json={"slug": "good", "title": "Good"},
            headers=good,
        )
        assert made.status_code == 201
        # Reading is not a cross-site risk (the browser keeps the answer from the page).
        assert (await client.get("/api/me", headers=evil)).status_code == 200


async def test_two_nodes_share_sessions(backend: Backend, tmp_path: Path) -> None:
    async with (
        running_server(backend, tmp_path) as first,
        running_server(backend, tmp_path) as second,
        first.client() as on_first,
    ):
        await register(on_first, "leo")
        await login(on_first, "leo")
        session = on_first.cookies["chatroom_session"]
        async with second.client(cookies={"chatroom_session": session}) as on_second:
            me = await on_second.get("/api/me")
            assert me.status_code == 200 and me.json()["user"]["username"] == "leo"
            # A logout on node 2 ends the session on node 1 too.
            assert (await on_second.post("/api/logout")).status_code == 204
        assert (await on_first.get("/api/me")).status_code == 401


async def test_no_password_or_session_id_in_the_logs(backend: Backend, tmp_path: Path) -> None:
    secret_password = "Sup3r-Secret-Passphrase"
    async with running_server(backend, tmp_path, settings={"log_level": "DEBUG"}) as server:
        async with server.client() as client:
            await register(client, "mona", secret_password)
            await login(client, "mona", secret_password)
            session = client.cookies["chatroom_session"]
            await client.get("/api/me")
            await client.post(
                "/api/login", json={"username": "mona", "password": "Wrong-" + secret_password}
            )
            token = (await client.post("/api/tokens", json={"name": "bot"})).json()["token"]
            await client.get("/api/me", headers={"authorization": f"Bearer {token['secret']}"})
            await client.post("/api/logout")
        await asyncio.sleep(0.2)
        log = server.log()
    assert "POST /api/login" in log  # the log was captured
    for secret in (secret_password, session, token["secret"]):
        assert secret not in log


async def test_bad_authorization_is_401(backend: Backend, tmp_path: Path) -> None:
    async with running_server(backend, tmp_path) as server, server.client() as client:
        await register(client, "nina")
        await login(client, "nina")
        assert (await client.get("/api/me")).status_code == 200
        for header in [
            "Bearer",
            "Bearer chr_unknown",
            "Bearer " + "x" * 5000,
            "Basic dXNlcjpwYXNz",
        ]:
            # A wrong credential is refused, not served as the cookie's user.
            answer = await client.get("/api/me", headers={"authorization": header})
            assert answer.status_code == 401, header
            assert _error(answer)["code"] == "not_authenticated"


async def test_api_tokens(backend: Backend, tmp_path: Path, engine: AsyncEngine) -> None:
    async with (
        running_server(backend, tmp_path) as server,
        server.client() as owner,
        server.client() as other,
    ):
        await register(owner, "otto")
        await login(owner, "otto")
        await register(other, "pia")
        await login(other, "pia")
        made = await owner.post("/api/tokens", json={"name": "  deploy bot 🤖 "})
        assert made.status_code == 201
        token = made.json()["token"]
        assert set(token) == {"id", "name", "secret", "created_at", "last_used_at"}
        assert token["name"] == "deploy bot 🤖" and token["secret"].startswith("chr_")
        secret = token["secret"]

        # The secret is shown once: the list has no secrets, SQL holds only its SHA-256.
        listed = (await owner.get("/api/tokens")).json()["tokens"]
        assert [t["id"] for t in listed] == [token["id"]] and "secret" not in listed[0]
        async with engine.connect() as conn:
            stored = (await conn.execute(sa.select(api_tokens.c.secret_hash))).scalars().all()
        assert stored == [hashlib.sha256(secret.encode()).hexdigest()]

        async with server.client() as bot:
            bearer = {"authorization": f"Bearer {secret}"}
            me = await bot.get("/api/me", headers=bearer)
            assert me.status_code == 200 and me.json()["user"]["username"] == "otto"
            # A bot needs no Origin and no cookie: it can act.
            room = await bot.post(
                "/api/rooms", json={"slug": "bots", "title": "Bots"}, headers=bearer
            )
            assert room.status_code == 201
            used = (await owner.get("/api/tokens")).json()["tokens"][0]
            assert used["last_used_at"] is not None

            # Another user cannot see or revoke it: as unknown as a missing token.
            assert (await other.get("/api/tokens")).json() == {"tokens": []}
            foreign = await other.delete(f"/api/tokens/{token['id']}")
            assert foreign.status_code == 404 and _error(foreign)["code"] == "token_not_found"
            assert (await bot.get("/api/me", headers=bearer)).status_code == 200

            assert (await owner.delete(f"/api/tokens/{token['id']}")).status_code == 204
            assert (await owner.delete(f"/api/tokens/{token['id']}")).status_code == 404
            assert (await bot.get("/api/me", headers=bearer)).status_code == 401

        for body in ({"name": ""}, {"name": "   "}, {"name": "x" * 65}, {}, {"name": 7}):
            bad = await owner.post("/api/tokens", json=body)
            assert bad.status_code == 422 and _error(bad)["code"] == "invalid_name", body
