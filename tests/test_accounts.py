"""Accounts over HTTP. Against a real `chatroom serve`: register, login, logout and me,
sessions shared by two nodes, and no secrets in the process's log. On an app node in the
test's process: API tokens, every refusal of registration and login, what a login
hashes (a spy on the password hasher), cross-site requests, bad credentials,
credentials only a session manages, origins and https. Throttling is in
test_accounts_throttle."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from argon2 import extract_parameters
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_servers import PASSWORD, api_error, login, register
from chatroom.store.tables import api_tokens
from conftest import SignUp, StartApp, StartServer
from hasher_spy import HasherSpy, spy_on_hasher
from waiting import wait_until


def _session(session_id: str) -> dict[str, str]:
    """Headers presenting a session cookie, whatever the client's own cookie jar holds."""
    return {"cookie": f"chatroom_session={session_id}"}


@pytest.fixture
def hasher_spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[HasherSpy]:
    yield from spy_on_hasher(monkeypatch)


async def test_register_login_me_logout(chat_server: StartServer) -> None:
    async with (await chat_server()).client() as client:
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
        assert me.status_code == 401 and api_error(me)["code"] == "not_authenticated"

        answer = await client.post("/api/login", json={"username": "alice", "password": PASSWORD})
        assert answer.status_code == 200
        assert answer.json() == {"user": first}
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("chatroom_session=")
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=lax", "path=/"} <= flags
        assert "secure" not in flags
        me = await client.get("/api/me")
        # Extension: what the client checks before a send, and how late it may resend.
        limits = {"message_max_chars": 4000, "resend_window_s": 86400}
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


async def test_me_tells_how_long_a_resend_is_stored_once(
    chat_app: StartApp, signed_up: SignUp
) -> None:
    """The web client does not resend on its own past the server's client_id window."""
    node = await chat_app(settings={"client_id_ttl_s": "3600"})
    alice = await signed_up(node, "alice")
    assert (await alice.get("/api/me")).json()["limits"]["resend_window_s"] == 3600


async def test_two_nodes_share_sessions(chat_server: StartServer, signed_up: SignUp) -> None:
    first, second = await chat_server(), await chat_server()
    on_first = await signed_up(first, "leo")
    session = on_first.cookies["chatroom_session"]
    async with second.client(cookies={"chatroom_session": session}) as on_second:
        me = await on_second.get("/api/me")
        assert me.status_code == 200 and me.json()["user"]["username"] == "leo"
        # A logout on node 2 ends the session on node 1 too.
        assert (await on_second.post("/api/logout")).status_code == 204
    assert (await on_first.get("/api/me")).status_code == 401


async def test_change_display_name_on_every_session_and_node(
    chat_server: StartServer, signed_up: SignUp
) -> None:
    first, second = await chat_server(), await chat_server()
    phone = await signed_up(first, "mia", display_name="Mia")
    async with second.client() as laptop:
        await login(laptop, "mia")
        renamed = await phone.patch("/api/me", json={"display_name": "  米娅 Mia 🌸 "})
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["user"]["display_name"] == "米娅 Mia 🌸"
        # Every session of hers, on any node, has the new name at once (no re-login).
        for client in (phone, laptop):
            me = (await client.get("/api/me")).json()["user"]
            assert me["display_name"] == "米娅 Mia 🌸" and me["username"] == "mia"
        # The room's member list (SQL) shows it too.
        members = (await laptop.get("/api/rooms/lobby/members")).json()["members"]
        assert [m["display_name"] for m in members if m["username"] == "mia"] == ["米娅 Mia 🌸"]
        for body, code in [
            ({"display_name": "   "}, "invalid_display_name"),
            ({"display_name": "x" * 65}, "invalid_display_name"),
            ({"display_name": "admin\u202e"}, "invalid_display_name"),
            ({}, "invalid_display_name"),
            ({"display_name": 7}, "invalid_display_name"),
        ]:
            refused = await laptop.patch("/api/me", json=body)
            assert refused.status_code == 422, (body, refused.text)
            assert api_error(refused)["code"] == code, (body, refused.text)
        assert (await laptop.get("/api/me")).json()["user"]["display_name"] == "米娅 Mia 🌸"
    async with first.client() as stranger:
        assert (await stranger.patch("/api/me", json={"display_name": "X"})).status_code == 401


async def test_no_password_or_session_id_in_the_logs(chat_server: StartServer) -> None:
    secret_password = "Sup3r-Secret-Passphrase"
    server = await chat_server(settings={"log_level": "DEBUG"})
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

    def logged_out() -> str | None:
        # The last request's access line: the node has logged everything before it.
        log = server.log()
        return log if "POST /api/logout" in log else None

    log = await wait_until(logged_out, what="the node logged the logout")
    assert "POST /api/login" in log  # the log was captured
    for secret in (secret_password, session, token["secret"]):
        assert secret not in log


# In the test's process from here: tokens and refusals need the app, not a process.


async def test_api_tokens(engine: AsyncEngine, chat_app: StartApp, signed_up: SignUp) -> None:
    node = await chat_app()
    owner, other = await signed_up(node, "otto"), await signed_up(node, "pia")
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

    async with node.client() as bot:
        bearer = {"authorization": f"Bearer {secret}"}
        me = await bot.get("/api/me", headers=bearer)
        assert me.status_code == 200 and me.json()["user"]["username"] == "otto"
        # A bot needs no Origin and no cookie: it can act.
        room = await bot.post("/api/rooms", json={"slug": "bots", "title": "Bots"}, headers=bearer)
        assert room.status_code == 201
        used = (await owner.get("/api/tokens")).json()["tokens"][0]
        assert used["last_used_at"] is not None

        # Another user cannot see or revoke it: as unknown as a missing token.
        assert (await other.get("/api/tokens")).json() == {"tokens": []}
        foreign = await other.delete(f"/api/tokens/{token['id']}")
        assert foreign.status_code == 404 and api_error(foreign)["code"] == "token_not_found"
        assert (await bot.get("/api/me", headers=bearer)).status_code == 200

        assert (await owner.delete(f"/api/tokens/{token['id']}")).status_code == 204
        assert (await owner.delete(f"/api/tokens/{token['id']}")).status_code == 404
        assert (await bot.get("/api/me", headers=bearer)).status_code == 401

    for body in (
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 65},
        {},
        {"name": 7},
        {"name": "bot\u2066"},
    ):
        bad = await owner.post("/api/tokens", json=body)
        assert bad.status_code == 422 and api_error(bad)["code"] == "invalid_name", body


async def test_register_refusals(chat_app: StartApp) -> None:
    async with (await chat_app()).client() as client:
        # Several "first" users at once: exactly one of them becomes the admin.
        founders = await asyncio.gather(*(register(client, f"founder{i}") for i in range(6)))
        assert sum(bool(user["is_admin"]) for user in founders) == 1
        await register(client, "carol")
        taken = await client.post("/api/register", json={"username": "Carol", "password": PASSWORD})
        assert taken.status_code == 409 and api_error(taken)["code"] == "username_taken"
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
            (
                {"username": "dave", "password": PASSWORD, "display_name": "admin\u202e (system)"},
                "invalid_display_name",
            ),
            (
                {"username": "dave", "password": PASSWORD, "display_name": "car\u200bol"},
                "invalid_display_name",
            ),
            ({"username": "dave"}, "invalid_password"),
            ({"username": 12345, "password": PASSWORD}, "invalid_username"),
        ]
        for body, code in cases:
            answer = await client.post("/api/register", json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert api_error(answer)["code"] == code, (body, answer.text)
        not_json = await client.post(
            "/api/register", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 422 and api_error(not_json)["code"] == "invalid_json"
        # Names no account can have are refused without a lookup, never a server error.
        for name in ("\ud800abc", "nul\x00name", "x" * 10_000, "carol\n"):
            # json.dumps escapes a lone surrogate as \ud800, as a hostile client may send it.
            body = json.dumps({"username": name, "password": PASSWORD}).encode()
            headers = {"content-type": "application/json"}
            answer = await client.post("/api/login", content=body, headers=headers)
            assert answer.status_code == 401, name
            answer = await client.post("/api/register", content=body, headers=headers)
            assert answer.status_code == 422, name
        # A form post (what a cross-site page can send without CORS) is not JSON: refused.
        form = await client.post("/api/register", data={"username": "erin", "password": PASSWORD})
        assert form.status_code == 422
        assert (
            await client.post("/api/login", json={"username": "erin", "password": PASSWORD})
        ).status_code == 401


async def test_unknown_user_and_wrong_password_look_the_same(
    chat_app: StartApp, hasher_spy: HasherSpy
) -> None:
    async with (await chat_app()).client() as client:
        await register(client, "frank")
        stored_hashes: dict[str, str] = {}
        bodies = []
        # Unknown user, wrong password, and the guesses refused before any lookup: a name
        # no account can have, a password too long to be anyone's, a lone surrogate.
        for case, username, password in [
            ("unknown user", "nobody_here", "wrong password"),
            ("wrong password", "frank", "wrong password"),
            ("impossible name", "no such name!", "wrong password"),
            ("overlong password", "frank", "x" * 5000),
            ("lone surrogate", "frank", "pass\ud800word"),
        ]:
            hasher_spy.reset()
            body = json.dumps({"username": username, "password": password}).encode()
            answer = await client.post(
                "/api/login", content=body, headers={"content-type": "application/json"}
            )
            assert answer.status_code == 401, case
            assert "set-cookie" not in answer.headers, case
            bodies.append(answer.json())
            # Each runs exactly one argon2id verification and makes no new hash.
            assert len(hasher_spy.verified) == 1 and hasher_spy.hashed == 0, (case, hasher_spy)
            stored_hashes[case] = hasher_spy.verified[0]
        assert all(
            body == {"error": {"code": "bad_credentials", "message": "wrong username or password"}}
            for body in bodies
        )
        # ... against hashes of the same cost: the same work, whatever the case.
        costs = {case: extract_parameters(stored) for case, stored in stored_hashes.items()}
        assert len({repr(cost) for cost in costs.values()}) == 1, costs
        assert stored_hashes["unknown user"] != stored_hashes["wrong password"]


async def test_secure_cookie_and_cross_site_requests(chat_app: StartApp) -> None:
    settings = {"cookie_secure": "true", "allowed_origins": "https://chat.example"}
    async with (await chat_app(settings=settings)).client() as client:
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
            assert api_error(refused)["code"] == "forbidden_origin"
        good = {"origin": "https://chat.example", **_session(session)}
        made = await client.post("/api/rooms", json={"slug": "good", "title": "Good"}, headers=good)
        assert made.status_code == 201
        # Reading is not a cross-site risk (the browser keeps the answer from the page).
        assert (await client.get("/api/me", headers=evil)).status_code == 200


async def test_bad_authorization_is_401(chat_app: StartApp, signed_up: SignUp) -> None:
    client = await signed_up(await chat_app(), "nina")
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
        assert api_error(answer)["code"] == "not_authenticated"


async def test_only_a_session_manages_credentials(chat_app: StartApp, signed_up: SignUp) -> None:
    node = await chat_app()
    owner = await signed_up(node, "rosa")
    made = (await owner.post("/api/tokens", json={"name": "bot"})).json()["token"]
    bearer = {"authorization": f"Bearer {made['secret']}"}
    async with node.client() as bot:
        # A leaked token can neither mint more tokens nor keep itself alive, nor change
        # the password or end the owner's sessions.
        for method, path, body in [
            ("POST", "/api/tokens", {"name": "another"}),
            ("GET", "/api/tokens", None),
            ("DELETE", f"/api/tokens/{made['id']}", None),
            ("POST", "/api/me/password", {"current_password": "x", "new_password": "y" * 8}),
            ("POST", "/api/logout/all", None),
            ("PATCH", "/api/me", {"display_name": "Hijacked"}),
        ]:
            refused = await bot.request(method, path, json=body, headers=bearer)
            assert refused.status_code == 403, (path, refused.text)
            assert api_error(refused)["code"] == "session_required"
            # A token that is not one is still just not authenticated.
            bad = await bot.request(method, path, json=body, headers={"authorization": "Bearer x"})
            assert bad.status_code == 401, path
        assert (await bot.get("/api/me", headers=bearer)).status_code == 200
        assert [t["name"] for t in (await owner.get("/api/tokens")).json()["tokens"]] == ["bot"]
        # The owner, signed in, revokes it: it ends at once.
        assert (await owner.delete(f"/api/tokens/{made['id']}")).status_code == 204
        assert (await bot.get("/api/me", headers=bearer)).status_code == 401


async def test_an_origin_that_is_not_the_site_s_is_refused_not_an_error(
    chat_app: StartApp, signed_up: SignUp
) -> None:
    node = await chat_app()
    client = await signed_up(node, "tomas")
    https_here = node.url.replace("http://", "https://", 1)
    for origin in ("http://[", "http://127.0.0.1:99999", https_here, "null"):
        for method, path, body in [
            ("POST", "/api/login", {"username": "tomas", "password": PASSWORD}),
            ("POST", "/api/register", {"username": "tomas2", "password": PASSWORD}),
            ("POST", "/api/rooms", {"slug": "crossed", "title": "Crossed"}),
            ("POST", "/api/logout", None),
        ]:
            refused = await client.request(method, path, json=body, headers={"origin": origin})
            assert refused.status_code == 403, (origin, path, refused.text)
            assert api_error(refused)["code"] == "forbidden_origin"
    assert (await client.get("/api/me")).status_code == 200  # the logout was refused
    made = await client.post(
        "/api/rooms", json={"slug": "same", "title": "Same"}, headers={"origin": node.url}
    )
    assert made.status_code == 201


async def test_https_gets_hsts_and_a_secure_cookie(chat_app: StartApp) -> None:
    behind = await chat_app(settings={"forwarded_allow_ips": "127.0.0.1"})
    https = {"x-forwarded-proto": "https"}
    async with behind.client() as client:
        await register(client, "ulla")
        plain = await client.post("/api/login", json={"username": "ulla", "password": PASSWORD})
        assert "strict-transport-security" not in plain.headers
        assert "secure" not in _cookie_flags(plain)
        # Over https, as the trusted proxy says: the page's origin is https too.
        origin = {"origin": behind.url.replace("http://", "https://", 1), **https}
        secure = await client.post(
            "/api/login", json={"username": "ulla", "password": PASSWORD}, headers=origin
        )
        assert secure.status_code == 200
        assert secure.headers["strict-transport-security"] == "max-age=31536000"
        assert "secure" in _cookie_flags(secure)
        out = await client.post("/api/logout", headers=origin)
        assert "secure" in _cookie_flags(out)
        assert "strict-transport-security" in (await client.get("/healthz", headers=https)).headers
        # An http page is not the https site.
        mixed = {"origin": behind.url, **https}
        refused = await client.post(
            "/api/login", json={"username": "ulla", "password": PASSWORD}, headers=mixed
        )
        assert refused.status_code == 403
    # Without a trusted proxy a client cannot claim https (nor turn HSTS on).
    async with (await chat_app()).client() as client:
        answer = await client.get("/healthz", headers=https)
        assert "strict-transport-security" not in answer.headers
    # A site configured with https origins only sets Secure, whatever reaches it.
    configured = await chat_app(settings={"allowed_origins": "https://chat.example"})
    async with configured.client() as client:
        site = {"origin": "https://chat.example"}
        made = await client.post(
            "/api/register", json={"username": "vito", "password": PASSWORD}, headers=site
        )
        assert made.status_code == 201
        answer = await client.post(
            "/api/login", json={"username": "vito", "password": PASSWORD}, headers=site
        )
        assert "secure" in _cookie_flags(answer)
        assert answer.headers["strict-transport-security"] == "max-age=31536000"


def _cookie_flags(answer: httpx.Response) -> set[str]:
    return {part.strip().lower() for part in answer.headers["set-cookie"].split(";")[1:]}
