"""The built packages are the whole product: the sdist carries the built web client (with
its precompressed .gz/.br files), the wheel built from that sdist (as `python -m build`
and `pip install chatroom-*.tar.gz` both do) carries it too, and installed alone in a new
virtual environment `chatroom serve` serves it (issue: a user who installs from a package
index gets the chat UI, not a page saying how to build it)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from chat_servers import free_port
from waiting import wait_until

# Building the sdist and the wheel and installing the dependencies take a minute or two
# (ten on a saturated machine).
pytestmark = [pytest.mark.processes, pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
BUILT_CLIENT = ROOT / "src" / "chatroom" / "web" / "client_dist" / "index.html"


def _clean_env() -> dict[str, str]:
    """Nothing of the source tree or the tests' settings: a PYTHONPATH at the checkout's
    src/ would make pip take its chatroom for installed and skip the package."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("CHATROOM_", "PYTHON"))}


def _run(*command: str | Path, cwd: Path) -> None:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


def _client_files(names: list[str], prefix: str) -> set[str]:
    return {n.removeprefix(prefix) for n in names if n.startswith(prefix) and not n.endswith("/")}


async def test_the_sdist_and_its_wheel_installed_in_a_new_venv_serve_the_web_client(
    tmp_path: Path,
) -> None:
    if not BUILT_CLIENT.exists():
        pytest.fail("the web client is not built: scripts/setup.sh builds it")
    built = {
        p.relative_to(BUILT_CLIENT.parent).as_posix()
        for p in BUILT_CLIENT.parent.rglob("*")
        if p.is_file()
    }
    assert any(n.endswith(".js.br") for n in built) and any(n.endswith(".js.gz") for n in built)

    # `python -m build` makes the sdist, then the wheel from the unpacked sdist: what the
    # wheel carries went through the sdist. Its own venv, apart from the one installed into.
    builder = tmp_path / "builder"
    _run(sys.executable, "-m", "venv", builder, cwd=tmp_path)
    # --no-isolation: the build backend installed here once, not in two throwaway venvs.
    _run(builder / "bin" / "pip", "install", "-q", "build", "setuptools>=77", cwd=tmp_path)
    _run(
        *(builder / "bin" / "python", "-m", "build", "--no-isolation", "--outdir", "dist", ROOT),
        cwd=tmp_path,
    )
    (sdist,) = (tmp_path / "dist").glob("chatroom-*.tar.gz")
    (wheel,) = (tmp_path / "dist").glob("chatroom-*.whl")
    with tarfile.open(sdist) as archive:
        in_sdist = [member.name for member in archive.getmembers() if member.isfile()]
    sdist_prefix = f"{sdist.name.removesuffix('.tar.gz')}/src/chatroom/web/client_dist/"
    assert _client_files(in_sdist, sdist_prefix) == built
    names = zipfile.ZipFile(wheel).namelist()
    assert _client_files(names, "chatroom/web/client_dist/") == built
    assert "chatroom/web/client_dist/index.html" in names
    assert any(re.fullmatch(r"chatroom/web/client_dist/assets/index-.+\.js", n) for n in names)

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    _run(venv / "bin" / "pip", "install", "-q", wheel, cwd=tmp_path)

    port = free_port()
    env = _clean_env()  # the installed package alone
    env.update({"CHATROOM_PORT": str(port), "CHATROOM_DATA_DIR": str(tmp_path / "data")})
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [venv / "bin" / "chatroom", "serve"], cwd=tmp_path, env=env, stdout=log, stderr=log
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

            async def up() -> bool:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(up, 60, what="the installed chatroom answers")
            shell = await client.get("/")
            assert shell.status_code == 200
            script = re.search(r'src="(/assets/index-[^"]+\.js)"', shell.text)
            assert script, shell.text  # the client's shell, not the "not built yet" page
            asset = await client.get(script.group(1))
            assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
