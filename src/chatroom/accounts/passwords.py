"""Password hashing with argon2id, off the event loop.

Parameters follow OWASP's minimum for argon2id (19 MiB, 2 iterations, 1 lane). A hash
takes tens of milliseconds of CPU; it runs in a worker thread (argon2-cffi releases the
GIL), so the node keeps serving while it runs. At most one hash per core runs at once:
more would only share the cores, so that every login (and the event loop) waits for all
of them; the rest wait their turn. A login for an unknown user verifies
against a dummy hash made with the same parameters: unknown user and wrong password
cost the same time.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MEMORY_KIB = 19 * 1024
ITERATIONS = 2
LANES = 1

_T = TypeVar("_T")


def hashing_slots() -> int:
    """How many hashes may run at once: one per core."""
    return max(1, os.cpu_count() or 1)


class Passwords:
    def __init__(self) -> None:
        self._hasher = PasswordHasher(
            time_cost=ITERATIONS,
            memory_cost=MEMORY_KIB,
            parallelism=LANES,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        # Made now, not at the first unknown login, which would otherwise take twice as long.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        self._slots = asyncio.Semaphore(hashing_slots())

    async def hash(self, password: str) -> str:
        return await self._in_turn(self._hasher.hash, password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        return await self._in_turn(self._verify, stored_hash, password)

    async def _in_turn(self, work: Callable[..., _T], *args: str) -> _T:
        async with self._slots:
            return await asyncio.to_thread(work, *args)

    async def verify_nobody(self, password: str) -> None:
        """Spend the time a real verification takes, for a user that does not exist."""
        await self.verify(self._dummy, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
