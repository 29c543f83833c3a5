"""Stable, distinct consumer names: `<host>-<instance>-<slot>`, the slot held by a file
lock, the instance a random id kept in the data folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chatroom.archiver.consumer_name import (
    host_name,
    instance_id,
    lease_consumer_name,
    same_holder_place,
)


def test_two_archivers_get_two_names_and_a_freed_slot_is_reused(tmp_path: Path) -> None:
    first = lease_consumer_name(tmp_path)
    second = lease_consumer_name(tmp_path)
    prefix = f"{host_name()}-{instance_id(tmp_path)}"
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


def test_the_instance_id_is_random_per_folder_and_kept(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = instance_id(tmp_path / "one")
    assert len(first) == 8 and instance_id(tmp_path / "one") == first
    assert instance_id(tmp_path / "two") != first


def test_a_token_says_which_machine_and_folder_hold_a_name(tmp_path: Path) -> None:
    token = lease_consumer_name(tmp_path)
    assert same_holder_place(token.token, token.token.rsplit("|", 1)[0] + "|99999")
    assert not same_holder_place(token.token, "another-machine|" + token.token.split("|", 1)[1])
    token.release()


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
