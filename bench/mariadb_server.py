"""A MariaDB server of a run's own: its datadir made by `mariadb-install-db` (system tables
only, root without a password) and the `mariadbd` command line for it, on loopback.

Shared by the bench's `--fresh-mariadb` (bench/_mariadb.py) and the chaos campaign
(bench/chaos/stores.py), which each run and stop the process their own way. Imported as
`mariadb_server` by the bench scripts (bench/ on sys.path) and as `bench.mariadb_server`
by the campaign (run as `python -m bench.chaos`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

MARIADBD = "/usr/sbin/mariadbd"
MARIADB_INSTALL_DB = "/usr/bin/mariadb-install-db"


def install_datadir(data: Path) -> str | None:
    """Make an empty datadir at `data`; None, or why it failed (the tool's last output)."""
    done = subprocess.run(
        [
            shutil.which("mariadb-install-db") or MARIADB_INSTALL_DB,
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--user=root",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return None
    return f"mariadb-install-db failed: {done.stdout[-500:]}{done.stderr[-500:]}"


def mariadbd_argv(data: Path, folder: Path, port: int, error_log: Path, *extra: str) -> list[str]:
    """`mariadbd` with the compiled-in defaults but for `extra`, on 127.0.0.1:`port`, its
    socket and pid file in `folder`."""
    return [
        shutil.which("mariadbd") or MARIADBD,
        "--no-defaults",
        f"--datadir={data}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--socket={folder / 'mariadb.sock'}",
        f"--pid-file={folder / 'mariadb.pid'}",
        "--user=root",
        "--skip-name-resolve",
        *extra,
        f"--log-error={error_log}",
    ]
