"""A stable consumer name per archiver process: `<host>-<instance>-<slot>`, and the mark
that tells this machine's processes from a clone's.

Stable, so that an archiver restarted after a crash finds its own pending entries under
the same name at once (instead of waiting for another to claim them); distinct, so that
two archivers never share a name:
- `<instance>` is a random id made once per data folder and kept in it (`instance-id`):
  two folders, on one host or on hosts with the same name (containers, cloned VMs), give
  two names;
- the slot is the lowest whose lock file in that folder this process can lock. The
  kernel releases the lock when the process dies, even by SIGKILL, so the restarted
  archiver gets the same slot back.
A cloned data folder (a VM image, a copied volume) keeps its instance id: the Redis-side
lease of the name (`name_lease`) settles that case, with the token made here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import socket
from pathlib import Path
from typing import IO

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
MAX_SLOTS = 256
INSTANCE_FILE = "instance-id"


class ConsumerLease:
    """A slot's lock file, held while the process uses the slot's name."""

    def __init__(self, name: str, handle: IO[str] | None, token: str = "") -> None:
        self.name = name
        self._handle = handle
        # Says who holds the name in Redis: this machine, this folder, this process.
        self.token = token

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def host_name() -> str:
    return _UNSAFE.sub("_", socket.gethostname())[:64] or "host"


def instance_id(folder: Path) -> str:
    """The data folder's random id, made by the first archiver to use the folder."""
    path = folder / INSTANCE_FILE
    if not path.exists():
        # Written aside, then linked in: two first archivers agree on one whole id.
        draft = folder / f".{INSTANCE_FILE}.{os.getpid()}"
        draft.write_text(secrets.token_hex(4) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        draft.unlink()
    found = _UNSAFE.sub("", path.read_text().strip())[:16]
    if not found:
        raise RuntimeError(f"{path} is empty or unreadable: remove it to make a new one")
    return found


def machine_mark() -> str:
    """This kernel boot and mount namespace: the same for every process of this machine
    (or container) that shares its files and locks, different on a clone or in another
    container. Where there is no /proc, the host name stands in."""
    parts = []
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/mnt"))
    return "/".join(parts) or socket.gethostname()


def lease_token(folder_id: str) -> str:
    """`<machine>|<instance>|<pid>`: a later process of this machine and folder that holds
    the same slot's lock may take the name over from a dead holder."""
    return f"{machine_mark()}|{folder_id}|{os.getpid()}"


def same_holder_place(token: str, other: str) -> bool:
    """Both tokens from this machine and data folder: the slot's lock (held by whoever
    asks) then proves the other holder dead."""
    return token.rsplit("|", 1)[0] == other.rsplit("|", 1)[0]


def lease_consumer_name(folder: Path, prefix: str = "archiver") -> ConsumerLease:
    """Lock the lowest free slot in `folder` and name the consumer after it."""
    folder.mkdir(parents=True, exist_ok=True)
    instance = instance_id(folder)
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
        name = f"{host_name()}-{instance}-{slot}"
        return ConsumerLease(name, handle, lease_token(instance))
    raise RuntimeError(f"more than {MAX_SLOTS} archivers hold a slot in {folder}")
