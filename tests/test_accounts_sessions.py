"""Sessions, throttle counters and password hashing, on real Redis (both backends)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading

import pytest
from argon2 import PasswordHasher, extract_parameters
from argon2 import Type as Argon2Type
from redis.asyncio import Redis

from chatroom import redis_keys
from chatroom.accounts.passwords import Passwords
from chatroom.accounts.sessions import SessionStore
from chatroom.accounts.throttle import Limit, Throttle
from chatroom.domain.users import User
from waiting import wait_until

ALICE = User(7, "alice", "Alice 🦊", is_admin=True)


async def test_session_keeps_the_user_and_only_a_hash_of_its_id(redis: Redis) -> None:
    sessions = SessionStore(redis, idle_s=60, absolute_s=120)
    session_id = await sessions.create(ALICE)
    assert await sessions.user(session_id) == ALICE
    digest = hashlib.sha256(session_id.encode()).hexdigest()
    keys = {key.decode() for key in await redis.keys("*")}
    assert redis_keys.session(digest) in keys
    assert not any(session_id in key for key in keys)
    assert await redis.smembers(redis_keys.user_sessions(ALICE.id)) == {digest.encode()}
    assert 0 < await redis.ttl(redis_keys.session(digest)) <= 60
    # Ids that were never issued are not sessions, whatever they look like. (The last
    # character of an id is one of 16: replacing it by "A" was a no-op once in 16 runs.)
    one_off = session_id[:-1] + ("B" if session_id[-1] != "B" else "C")
    for forged in ("", "x", one_off, "é" * 43, digest):
        assert await sessions.user(forged) is None


class FakeClock:
    """The session store's wall clock, moved by the test instead of by waiting."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_use_extends_the_idle_expiry_up_to_the_absolute_limit(redis: Redis) -> None:
    clock = FakeClock()
    sessions = SessionStore(redis, idle_s=60, absolute_s=300, clock=clock)
    session_id = await sessions.create(ALICE)
    key = redis_keys.session(hashlib.sha256(session_id.encode()).hexdigest())
    assert 59_000 < await redis.pttl(key) <= 60_000
    for _ in range(4):  # used every 50 s: each use gives it the whole idle limit again
        clock.now += 50
        await redis.pexpire(key, 10_000)  # as if most of the idle time had passed
        assert await sessions.user(session_id) == ALICE
        assert 59_000 < await redis.pttl(key) <= 60_000
    clock.now += 50  # 250 s after login: 50 s left, less than the idle limit
    assert await sessions.user(session_id) == ALICE
    assert 49_000 < await redis.pttl(key) <= 50_000
    clock.now += 50  # the absolute limit: over, however recently it was used
    assert await sessions.user(session_id) is None
    assert not await redis.exists(key)


async def test_an_unused_session_expires_after_the_idle_limit(redis: Redis) -> None:
    sessions = SessionStore(redis, idle_s=0.2, absolute_s=60)
    session_id = await sessions.create(ALICE)
    key = redis_keys.session(hashlib.sha256(session_id.encode()).hexdigest())
    # Redis expires the key on its own clock; watching it does not touch the session.
    await wait_until(lambda: _gone(redis, key), timeout=10, what="the idle session expired")
    assert await sessions.user(session_id) is None


async def _gone(redis: Redis, key: str) -> bool:
    return not await redis.exists(key)


async def test_revoke_one_and_all(redis: Redis) -> None:
    sessions = SessionStore(redis, idle_s=60, absolute_s=120)
    first, second, third = [await sessions.create(ALICE) for _ in range(3)]
    assert len({first, second, third}) == 3
    await sessions.revoke(first)
    assert await sessions.user(first) is None
    assert await sessions.user(second) == ALICE
    assert await sessions.revoke_all(ALICE.id) == 2
    assert await sessions.user(second) is None and await sessions.user(third) is None
    assert await sessions.revoke("never-issued-session-id-xxxxxxxxxxxxxx") is None
    # All but one: the session that asked (a password change) stays.
    here, *elsewhere = [await sessions.create(ALICE) for _ in range(3)]
    assert await sessions.revoke_all(ALICE.id, keep=here) == 2
    assert await sessions.user(here) == ALICE
    assert [await sessions.user(s) for s in elsewhere] == [None, None]
    assert await sessions.revoke_all(ALICE.id, keep=here) == 0
    assert await sessions.revoke(here) == ALICE.id


async def test_throttle_counts_per_subject_and_says_when_to_retry(redis: Redis) -> None:
    throttle = Throttle(redis)
    limit = [Limit("login-user", "grace", 3, 60)]
    assert [await throttle.hit(limit) for _ in range(3)] == [0, 0, 0]
    wait = await throttle.hit(limit)
    assert 59 <= wait <= 60
    assert await throttle.hit([Limit("login-user", "heidi", 3, 60)]) == 0
    # Several limits at once: the longest wait wins.
    both = [Limit("login-user", "ivan", 5, 60), Limit("login-address", "10.0.0.1", 1, 3600)]
    assert await throttle.hit(both) == 0
    assert 3590 <= await throttle.hit(both) <= 3600


async def test_passwords_are_argon2id_with_the_owasp_minimum() -> None:
    passwords = Passwords()
    stored = await passwords.hash("correct horse battery")
    parameters = extract_parameters(stored)
    assert parameters.type is Argon2Type.ID
    assert parameters.memory_cost >= 19 * 1024 and parameters.time_cost >= 2
    assert await passwords.verify(stored, "correct horse battery")
    assert not await passwords.verify(stored, "correct horse batterY")
    assert not await passwords.verify("not a hash", "correct horse battery")
    assert not passwords.needs_rehash(stored)
    weaker = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("pw pw pw pw")
    assert passwords.needs_rehash(weaker)
    await passwords.verify_nobody("anything at all")


async def test_no_more_hashes_run_at_once_than_there_are_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    passwords = Passwords()
    stored = await passwords.hash("correct horse battery")
    running, most = 0, 0
    lock = threading.Lock()
    real_verify = PasswordHasher.verify

    def verify(hasher: PasswordHasher, stored_hash: str | bytes, password: str | bytes) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            return real_verify(hasher, stored_hash, password)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(PasswordHasher, "verify", verify)
    # Ten logins at once (the worker threads alone would run six): at most two hash.
    results = await asyncio.gather(
        *(passwords.verify(stored, "correct horse battery") for _ in range(10))
    )
    assert results == [True] * 10
    assert 1 <= most <= 2
