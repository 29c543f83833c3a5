"""The campaign's users and rooms, made through the public HTTP API of a node."""

from __future__ import annotations

import asyncio

import httpx
from bench.chaos.clients import SESSION_COOKIE, Account

PASSWORD = "chaos-password-1"
SIGNUPS_AT_ONCE = 4  # argon2id: a few at a time on two cores


class SetupFailed(Exception):
    """A node refused a setup request the campaign depends on."""


async def _post(http: httpx.AsyncClient, path: str, body: dict[str, object]) -> httpx.Response:
    for _ in range(20):
        answer = await http.post(path, json=body)
        if answer.status_code not in (429, 503):
            return answer
        await asyncio.sleep(min(float(answer.headers.get("retry-after", "1")), 5.0))
    raise SetupFailed(f"POST {path}: still throttled or unavailable after 20 tries")


async def account(base_url: str, username: str, rooms: tuple[str, ...] = ()) -> Account:
    """Register `username`, log in, create `rooms` (public): the logged-in account."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as http:
        registered = await _post(
            http, "/api/register", {"username": username, "password": PASSWORD}
        )
        if registered.status_code != 201:
            raise SetupFailed(f"register {username}: {registered.status_code} {registered.text}")
        login = await _post(http, "/api/login", {"username": username, "password": PASSWORD})
        if login.status_code != 200:
            raise SetupFailed(f"login {username}: {login.status_code} {login.text}")
        for slug in rooms:
            made = await _post(http, "/api/rooms", {"slug": slug, "title": f"Chaos {slug}"})
            if made.status_code != 201:
                raise SetupFailed(f"create room {slug}: {made.status_code} {made.text}")
        cookie = http.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise SetupFailed(f"login {username}: no session cookie")
        return Account(username, int(registered.json()["user"]["id"]), cookie)


async def accounts(node_urls: list[str], names: list[str], rooms: tuple[str, ...]) -> list[Account]:
    """The first account creates the rooms; sign-ups alternate between the nodes."""
    first = await account(node_urls[0], names[0], rooms)
    gate = asyncio.Semaphore(SIGNUPS_AT_ONCE)

    async def one(index: int) -> Account:
        async with gate:
            return await account(node_urls[index % len(node_urls)], names[index])

    rest = await asyncio.gather(*(one(i) for i in range(1, len(names))))
    return [first, *rest]
