"""A spy on every argon2 computation of the process, for tests of what a login hashes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from argon2 import PasswordHasher


@dataclass
class HasherSpy:
    """Every argon2 computation in this process: the stored hash each verification was
    against, and how many new hashes were made."""

    verified: list[str] = field(default_factory=list)
    hashed: int = 0
    # argon2 runs in worker threads.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self) -> None:
        with self._lock:
            self.verified.clear()
            self.hashed = 0

    def saw_verify(self, stored: str | bytes) -> None:
        with self._lock:
            self.verified.append(stored if isinstance(stored, str) else stored.decode())

    def saw_hash(self) -> None:
        with self._lock:
            self.hashed += 1


def spy_on_hasher(monkeypatch: pytest.MonkeyPatch) -> Iterator[HasherSpy]:
    """Count the argon2 work of the test (its fixture: `yield from spy_on_hasher(...)`)."""
    spy = HasherSpy()
    real_verify, real_hash = PasswordHasher.verify, PasswordHasher.hash

    def verify(hasher: PasswordHasher, stored: str | bytes, password: Any) -> Any:
        spy.saw_verify(stored)
        return real_verify(hasher, stored, password)

    def hash_(hasher: PasswordHasher, *args: Any, **kwargs: Any) -> str:
        spy.saw_hash()
        return real_hash(hasher, *args, **kwargs)

    monkeypatch.setattr(PasswordHasher, "verify", verify)
    monkeypatch.setattr(PasswordHasher, "hash", hash_)
    yield spy
