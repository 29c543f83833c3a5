"""The systemd units in deploy/systemd are valid units (systemd-analyze verify)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes

UNITS = Path(__file__).resolve().parents[1] / "deploy" / "systemd"
INSTALLED_AT = "/opt/chatroom/venv/bin/chatroom"


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd")
    # The units name the documented install path; here the test's own venv stands in.
    chatroom = str(Path(sys.executable).with_name("chatroom"))
    for unit in UNITS.glob("*.service"):
        text = unit.read_text().replace(INSTALLED_AT, chatroom)
        name = unit.name.replace("@.", "@8000.")  # a template verifies as an instance
        (tmp_path / name).write_text(text)
    units = sorted(str(p) for p in tmp_path.glob("*.service"))
    assert len(units) == 2
    done = subprocess.run(
        [analyze, "verify", *units], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
