"""A stable consumer name per archiver process: `<host>-<folder>-<slot>`.

Stable, so that an archiver restarted after a crash finds its own pending entries under
the same name at once (instead of waiting for another to claim them); distinct, so that
two archivers never share a name: `<folder>` is a short hash of the data folder's path
(two folders on one host give two names), and the slot is the lowest whose lock file in
that folder this process can lock. The kernel releases the lock when the process dies,
even by SIGKILL, so the restarted archiver gets the same slot back.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import socket
from pathlib import Path
from typing import IO

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
MAX_SLOTS = 256


class ConsumerLease:
    def __init__(self, name: str, handle: IO[str] | None) -> None:
        self.name = name
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def host_name() -> str:
    return _UNSAFE.sub("_", socket.gethostname())[:64] or "host"


def folder_tag(folder: Path) -> str:
    return hashlib.blake2b(str(folder.resolve()).encode(), digest_size=3).hexdigest()


def lease_consumer_name(folder: Path, prefix: str = "archiver") -> ConsumerLease:
    """Lock the lowest free slot in `folder` and name the consumer after it."""
    folder.mkdir(parents=True, exist_ok=True)
    for slot in range(MAX_SLOTS):
        handle = (folder / f"{prefix}-{slot}.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return ConsumerLease(f"{host_name()}-{folder_tag(folder)}-{slot}", handle)
    raise RuntimeError(f"more than {MAX_SLOTS} archivers hold a slot in {folder}")
