"""Login and registration throttles over HTTP, on an app node in the test's process:
counted before any hash, per address, per (username, address) and per account, so that
nobody can lock the owner out; IPv6 counted by /64; a password change counted as a login."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from chat_servers import PASSWORD, api_error, login, register
from chatroom.accounts.throttle import address_block
from conftest import SignUp, StartApp
from hasher_spy import HasherSpy, spy_on_hasher


@pytest.fixture
def hasher_spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[HasherSpy]:
    yield from spy_on_hasher(monkeypatch)


async def test_login_throttled_per_username_before_hashing(
    chat_app: StartApp, hasher_spy: HasherSpy
) -> None:
    node = await chat_app(settings={"login_attempts_per_minute": "3"})
    async with node.client() as client:
        await register(client, "grace")

        async def guess(password: str, username: str = "grace") -> int:
            answer = await client.post(
                "/api/login", json={"username": username, "password": password}
            )
            if answer.status_code == 429:
                assert api_error(answer)["code"] == "throttled"
                assert 1 <= int(answer.headers["retry-after"]) <= 60
            return answer.status_code

        hasher_spy.reset()
        assert [await guess(f"guess {i}") for i in range(3)] == [401] * 3
        assert len(hasher_spy.verified) == 3
        # The limit holds for the right password too, and for any spelling of the name.
        assert await guess(PASSWORD) == 429
        assert await guess("guess again", username="GRACE") == 429
        # A throttled guess is cheap: it is refused before any password hash runs.
        assert {await guess(f"again {i}") for i in range(9)} == {429}
        # A parallel burst gets no further than a sequence.
        assert set(await asyncio.gather(*(guess(f"burst {i}") for i in range(30)))) == {429}
        assert len(hasher_spy.verified) == 3
        # Another user is not locked out by grace's attacker.
        await register(client, "heidi")
        await login(client, "heidi")


async def test_login_and_registration_throttled_per_address(chat_app: StartApp) -> None:
    settings = {
        "login_attempts_per_address_per_minute": "4",
        "registrations_per_address_per_hour": "2",
    }
    async with (await chat_app(settings=settings)).client() as client:
        await register(client, "ivan")
        await register(client, "judy")
        third = await client.post(
            "/api/register", json={"username": "mallory", "password": PASSWORD}
        )
        assert third.status_code == 429 and api_error(third)["code"] == "throttled"
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


# Client addresses: the node trusts the test's X-Forwarded-For (as it would a reverse
# proxy's, CHATROOM_FORWARDED_ALLOW_IPS), so one client can speak from many addresses.
BEHIND_A_PROXY = {"forwarded_allow_ips": "127.0.0.1"}


def _from(address: str) -> dict[str, str]:
    return {"x-forwarded-for": address}


async def _login_from(
    client: httpx.AsyncClient, address: str, username: str, password: str = PASSWORD
) -> int:
    answer = await client.post(
        "/api/login", json={"username": username, "password": password}, headers=_from(address)
    )
    if answer.status_code == 429:
        assert api_error(answer)["code"] == "throttled" and int(answer.headers["retry-after"]) >= 1
    return answer.status_code


async def test_an_attacker_elsewhere_cannot_lock_the_owner_out(
    chat_app: StartApp, hasher_spy: HasherSpy
) -> None:
    # The account's own limit is low too: the attacker's throttled guesses must not count
    # towards it, or one address could still lock everyone out of the account.
    settings = {
        **BEHIND_A_PROXY,
        "login_attempts_per_minute": "3",
        "login_attempts_per_account_per_hour": "5",
    }
    async with (await chat_app(settings=settings)).client() as client:
        await register(client, "olive")
        hasher_spy.reset()
        attacker = "203.0.113.7"
        guesses = [await _login_from(client, attacker, "olive", f"guess {i}") for i in range(20)]
        assert guesses == [401] * 3 + [429] * 17
        # Even the right password is refused from the attacker's address now, and a
        # throttled attempt costs no hash.
        assert await _login_from(client, attacker, "OLIVE") == 429
        assert len(hasher_spy.verified) == 3
        # The owner, from an address never seen before, gets in.
        assert await _login_from(client, "198.51.100.20", "olive") == 200


async def test_the_account_limit_stops_many_addresses_but_not_the_owners_own(
    chat_app: StartApp,
) -> None:
    settings = {
        **BEHIND_A_PROXY,
        "login_attempts_per_minute": "2",
        "login_attempts_per_account_per_hour": "5",
    }
    async with (await chat_app(settings=settings)).client() as client:
        await register(client, "pablo")
        home = "198.51.100.30"
        assert await _login_from(client, home, "pablo") == 200  # the owner's device (1 of 5)
        # Credential stuffing from many addresses, each within its own limit.
        outcomes = [
            await _login_from(client, f"203.0.113.{n}", "pablo", "stuffed")
            for n in range(1, 5)
            for _ in range(2)
        ]
        assert outcomes == [401] * 4 + [429] * 4
        # A fresh address is refused while the account is under attack ...
        assert await _login_from(client, "192.0.2.99", "pablo") == 429
        # ... but the owner's own address is not, nor are other accounts.
        assert await _login_from(client, home, "pablo") == 200
        await register(client, "quentin")
        assert await _login_from(client, "203.0.113.1", "quentin") == 200


async def test_ipv6_clients_are_counted_by_their_64(chat_app: StartApp) -> None:
    settings = {
        **BEHIND_A_PROXY,
        "login_attempts_per_address_per_minute": "3",
        "registrations_per_address_per_hour": "2",
    }
    async with (await chat_app(settings=settings)).client() as client:
        # Addresses of one /64, any of which its owner may use at will: one client.
        block = ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:fffe"]
        for n, address in enumerate(block):
            assert await _login_from(client, address, f"user{n}", "wrong guess") == 401
        assert await _login_from(client, "2001:db8:1:2:abcd::9", "user9", "wrong guess") == 429
        # The next /64 is another client.
        assert await _login_from(client, "2001:db8:1:3::1", "user9", "wrong guess") == 401
        registrations = [
            await client.post(
                "/api/register",
                json={"username": f"six{n}", "password": PASSWORD},
                headers=_from(address),
            )
            for n, address in enumerate([*block[:2], "2001:db8:1:2::99"])
        ]
        assert [r.status_code for r in registrations] == [201, 201, 429]


def test_a_throttle_counts_an_ipv6_address_by_its_64() -> None:
    assert address_block("2001:DB8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert address_block("2001:db8:1:2::") == address_block("2001:db8:1:2:ffff::1")
    assert address_block("2001:db8:1:3::1") != address_block("2001:db8:1:2::1")
    assert address_block("::ffff:192.0.2.1") == "192.0.2.1"  # IPv4, as a dual stack shows it
    assert address_block("192.0.2.1") == "192.0.2.1"
    assert address_block("unknown") == "unknown"


async def test_a_password_change_is_proven_and_throttled_like_a_login(
    chat_app: StartApp, signed_up: SignUp, hasher_spy: HasherSpy
) -> None:
    node = await chat_app(settings={"login_attempts_per_minute": "3"})
    client = await signed_up(node, "sven")
    new_password = "a much better passphrase"

    async def change(current: object, new: object) -> httpx.Response:
        body = {"current_password": current, "new_password": new}
        return await client.post("/api/me/password", json=body)

    # Bad input is refused before any hash or count.
    hasher_spy.reset()
    for current, new, code in [
        (PASSWORD, "short", "invalid_new_password"),
        (PASSWORD, "x" * 1025, "invalid_new_password"),
        (PASSWORD, None, "invalid_new_password"),
        (None, new_password, "invalid_current_password"),
    ]:
        refused = await change(current, new)
        assert refused.status_code == 422 and api_error(refused)["code"] == code, refused.text
    assert hasher_spy.verified == [] and hasher_spy.hashed == 0
    # A wrong current password is a 403 (the session is fine), and counts as a guess.
    for _ in range(2):
        wrong = await change("not my password", new_password)
        assert wrong.status_code == 403 and api_error(wrong)["code"] == "wrong_password"
    assert (await change(PASSWORD, new_password)).status_code == 204
    assert (await client.get("/api/me")).status_code == 200  # this session stays
    # The old password is gone, the new one works (and the count started afresh).
    assert (
        await client.post("/api/login", json={"username": "sven", "password": PASSWORD})
    ).status_code == 401
    await login(client, "sven", new_password)
    # Guessing through the password change is guessing a login: the same counter.
    for _ in range(3):
        assert (await change("guess", "whatever it is")).status_code == 403
    assert (await change(new_password, "whatever it is")).status_code == 429
    throttled = await client.post("/api/login", json={"username": "sven", "password": new_password})
    assert throttled.status_code == 429
