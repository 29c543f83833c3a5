"""A freshly started MariaDB of the bench's own, for `--fresh-mariadb`.

The machine's MariaDB on 3306 is shared and has been running (warm: its buffer pool and
tablespaces hold what earlier runs left); a bench that wants the figures of a server that
just started gets its own: `mariadb-install-db` into a temporary folder, then Debian's
`mariadbd` on loopback, on a free port of 23300-23399, with the compiled-in defaults (the
machine's server runs them too: a 128 MiB buffer pool, `innodb_flush_log_at_trx_commit=1`),
root without a password. It is stopped, and its folder removed, when the bench ends,
however it ends. The machine's server is never signalled nor reconfigured.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from _servers import Server, ServerFailed, ServerSet
from mariadb_server import MARIADB_INSTALL_DB, MARIADBD, install_datadir, mariadbd_argv

PORTS = range(23300, 23400)


def free_port_in(ports: range) -> int:
    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ServerFailed(f"no free port in {ports.start}-{ports.stop - 1}")


def tools_missing() -> str | None:
    for tool, default in (("mariadbd", MARIADBD), ("mariadb-install-db", MARIADB_INSTALL_DB)):
        if shutil.which(tool) is None and not Path(default).exists():
            return f"{tool} is not installed (Debian's mariadb-server package)"
    return None


@dataclass(frozen=True)
class FreshMariaDB:
    url: str  # of the bench's database on it (created by the bench's `ensure_database`)
    pid: int


@contextmanager
def fresh_mariadb(database: str) -> Iterator[FreshMariaDB]:
    """A MariaDB started now, empty but for its system tables."""
    missing = tools_missing()
    if missing is not None:
        raise SystemExit(f"--fresh-mariadb: {missing}")
    folder = Path(tempfile.mkdtemp(prefix="chatroom-bench-mariadb-"))
    data = folder / "data"
    try:
        failed = install_datadir(data)
        if failed is not None:
            raise SystemExit(failed)
        port = free_port_in(PORTS)
        argv = mariadbd_argv(data, folder, port, folder / "mariadbd.err")
        with ServerSet().running() as servers:
            server = servers.add(Server("mariadbd", argv, log_dir=folder, port=port))
            asyncio.run(server.wait_listening(120))
            print(f"fresh MariaDB (pid {server.pid}) on 127.0.0.1:{port}", flush=True)
            yield FreshMariaDB(f"mysql+asyncmy://root@127.0.0.1:{port}/{database}", server.pid)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
