"""Where Redis's AOF was last fsynced: the part of it a power cut cannot take back.

A power cut loses what the kernel held and no fsync had put on disk. To cut an AOF back
as a power cut would, the campaign must know where the last fsync ended, which Redis
does not say. `fsync_recorder.c`, built here with the system's C compiler and loaded
into Redis with LD_PRELOAD, records after each fsync the file's size when it began;
`synced_size` reads it while Redis is stopped. Without a compiler the campaign falls
back to cutting one second of the AOF (`stores.AofTail`), which may also cut what an
fsync had confirmed.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("fsync_recorder.c")
FOLDER_VARIABLE = "CHATROOM_FSYNC_RECORDS"


def build(cache: Path) -> Path | None:
    """The shared library, compiled once per source version; None without a compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    library = cache / f"fsync_recorder-{digest}.so"
    if not library.exists():
        cache.mkdir(parents=True, exist_ok=True)
        building = library.with_suffix(".tmp")
        done = subprocess.run(
            [compiler, "-shared", "-fPIC", "-O2", "-o", str(building), str(SOURCE), "-ldl"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return None
        building.replace(library)
    return library


def preload_env(library: Path, records: Path) -> dict[str, str]:
    """What a Redis process's environment needs for its fsyncs to be recorded."""
    records.mkdir(parents=True, exist_ok=True)
    return {"LD_PRELOAD": str(library), FOLDER_VARIABLE: str(records)}


def synced_size(records: Path, path: Path, pid: int) -> int | None:
    """How many bytes of `path` an fsync of process `pid` has put on disk; None: none
    recorded (the process has no recorder, or has not fsynced the file yet)."""
    wanted = str(path.resolve())
    found: int | None = None
    for record in records.glob(f"{pid}-fd-*"):
        try:
            line = record.read_bytes().split(b"\n", 1)[0].decode()
        except (OSError, UnicodeDecodeError):
            continue
        size, _, name = line.strip().partition(" ")
        if name == wanted and size.isdigit():
            found = max(found or 0, int(size))
    return found


def forget(records: Path) -> None:
    """Drop the records of a Redis process that is gone (its fds mean nothing now)."""
    for record in records.glob("*-fd-*"):
        record.unlink(missing_ok=True)
