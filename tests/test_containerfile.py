"""deploy/container/Containerfile, checked without a container engine (none on the machines
that run the tests): its stages, that every file it copies is in the repository and not
left out of the build context, that its roles are commands of the CLI, and that its
settings are real ones."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chatroom.cli import app
from chatroom.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in CONTAINERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            joined.append(pending.strip())
            pending = ""
    assert not pending, "a continuation line ends the file"
    return [(i.split(None, 1)[0].upper(), i.split(None, 1)[1]) for i in joined]


def _exec_form(arguments: str) -> list[str]:
    words = json.loads(arguments)
    assert isinstance(words, list) and all(isinstance(w, str) for w in words)
    return words


def _ignored(path: str) -> bool:
    patterns = [
        p.strip()
        for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
        for pattern in patterns
        for prefix in prefixes
    ) or any(
        pattern.startswith("**/") and pattern.removeprefix("**/") in parts for pattern in patterns
    )


def test_stages_build_the_client_then_the_package_then_a_runtime() -> None:
    stages = [
        re.fullmatch(r"(\S+) AS (\S+)", args, re.IGNORECASE)
        for kind, args in _instructions()
        if kind == "FROM"
    ]
    assert all(stages), "every stage is named"
    names = [m.group(2) for m in stages if m]
    assert names == ["client", "python", "runtime"]
    images = [m.group(1) for m in stages if m]
    assert images[0].startswith("docker.io/library/node:")
    assert all(i.startswith("docker.io/library/python:3.") for i in images[1:])


def test_every_copy_source_is_in_the_repository_and_the_build_context() -> None:
    stages: list[str] = []
    copies = 0
    for kind, args in _instructions():
        if kind == "FROM":
            stages.append(args.split()[-1])
        if kind != "COPY":
            continue
        words = shlex.split(args)
        options = [w for w in words if w.startswith("--")]
        sources = [w for w in words if not w.startswith("--")][:-1]
        assert sources
        copies += 1
        from_stage = [o.removeprefix("--from=") for o in options if o.startswith("--from=")]
        if from_stage:
            assert from_stage[0] in stages[:-1], f"COPY {args}: an earlier stage"
            continue
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not _ignored(source.rstrip("/")), f"COPY {source}: left out by .dockerignore"
    assert copies >= 5


def test_the_built_client_is_copied_from_where_vite_writes_it() -> None:
    vite = (ROOT / "client" / "vite.config.ts").read_text()
    assert "outDir: '../src/chatroom/web/client_dist'" in vite
    workdirs = [a for k, a in _instructions() if k == "WORKDIR"]
    assert workdirs[0] == "/build/client"  # so ../src is /build/src
    copied = [a for k, a in _instructions() if k == "COPY" and a.startswith("--from=client")]
    assert copied == [
        "--from=client /build/src/chatroom/web/client_dist/ ./src/chatroom/web/client_dist/"
    ]
    assert _ignored("src/chatroom/web/client_dist"), "a local build must not shadow it"
    assert _ignored("client/node_modules") and not _ignored("client/src/main.ts")


def test_it_runs_as_a_user_without_privileges_with_its_data_on_a_volume() -> None:
    instructions = _instructions()
    users = [a for k, a in instructions if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    env = " ".join(a for k, a in instructions if k == "ENV")
    settings = dict(re.findall(r"(CHATROOM_\w+)=(\S+)", env))
    fields = {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields}
    assert set(settings) <= fields, f"not settings: {set(settings) - fields}"
    assert settings["CHATROOM_HOST"] == "0.0.0.0"  # reachable through the published port
    volumes = [_exec_form(a) for k, a in instructions if k == "VOLUME"]
    assert volumes == [[settings["CHATROOM_DATA_DIR"]]]
    (health,) = [a for k, a in instructions if k == "HEALTHCHECK"]
    assert "/healthz" in health and "CHATROOM_PORT" in health
    assert str(settings["CHATROOM_PORT"]) in [a for k, a in instructions if k == "EXPOSE"]


@pytest.mark.parametrize("role", [None, ["archive"], ["db", "upgrade"], ["serve", "--no-archiver"]])
def test_every_role_is_a_command_of_the_cli(role: list[str] | None) -> None:
    instructions = _instructions()
    (entrypoint,) = [_exec_form(a) for k, a in instructions if k == "ENTRYPOINT"]
    (cmd,) = [_exec_form(a) for k, a in instructions if k == "CMD"]
    assert entrypoint == ["chatroom"]
    assert (ROOT / "pyproject.toml").read_text().count('chatroom = "chatroom.cli:main"') == 1
    arguments = cmd if role is None else role
    done = CliRunner().invoke(app, [*arguments, "--help"])
    assert done.exit_code == 0, done.output
    assert "Usage: " in done.output
