"""Stable, distinct consumer names: `<host>-<folder>-<slot>`, the slot held by a file lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chatroom.archiver.consumer_name import folder_tag, host_name, lease_consumer_name


def test_two_archivers_get_two_names_and_a_freed_slot_is_reused(tmp_path: Path) -> None:
    first = lease_consumer_name(tmp_path)
    second = lease_consumer_name(tmp_path)
    prefix = f"{host_name()}-{folder_tag(tmp_path)}"
    assert first.name == f"{prefix}-0" and second.name == f"{prefix}-1"
    first.release()
    again = lease_consumer_name(tmp_path)
    assert again.name == f"{prefix}-0"
    again.release()
    second.release()


def test_two_data_folders_on_one_host_never_share_a_name(tmp_path: Path) -> None:
    one = lease_consumer_name(tmp_path / "one")
    two = lease_consumer_name(tmp_path / "two")
    assert one.name != two.name and one.name.endswith("-0") and two.name.endswith("-0")
    one.release()
    two.release()


@pytest.mark.processes
def test_a_killed_archivers_slot_comes_back_to_its_restart(tmp_path: Path) -> None:
    # A process holds slot 0 and is killed with SIGKILL: the kernel drops the lock.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from chatroom.archiver.consumer_name import lease_consumer_name\n"
            f"lease = lease_consumer_name(Path({str(tmp_path)!r}))\n"
            "print(lease.name, flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    held = holder.stdout.readline().strip()
    assert held.endswith("-0")
    meanwhile = lease_consumer_name(tmp_path)
    assert meanwhile.name.endswith("-1")  # slot 0 is taken while it lives
    meanwhile.release()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    restarted = lease_consumer_name(tmp_path)
    assert restarted.name == held
    restarted.release()
