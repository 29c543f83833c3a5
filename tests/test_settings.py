"""Configuration: environment over file over defaults; every mistake is one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatroom.settings import ArchiveSchedule
from chatroom.settings_loader import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CHATROOM_"):
            monkeypatch.delenv(key)


def test_defaults_are_the_embedded_mode() -> None:
    settings = load_settings()
    assert settings.embedded_redis and settings.embedded_database
    assert settings.sqlalchemy_url.startswith("sqlite+aiosqlite:///")
    assert settings.sqlalchemy_url.endswith("chatroom-data/chatroom.sqlite3")
    assert settings.archiver_schedule is ArchiveSchedule.continuous
    assert settings.message_max_chars == 4000 and settings.frame_max_bytes == 65536


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "chatroom.toml"
    config.write_text(
        'redis_url = "redis://127.0.0.1:6379/0"\nport = 9000\narchiver_batch_size = 500\n'
        'allowed_origins = ["https://chat.example.org"]\n'
    )
    monkeypatch.setenv("CHATROOM_PORT", "9100")
    settings = load_settings(config)
    assert settings.port == 9100
    assert settings.archiver_batch_size == 500
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.allowed_origins == ["https://chat.example.org"]
    monkeypatch.setenv("CHATROOM_CONFIG", str(config))
    monkeypatch.setenv("CHATROOM_ALLOWED_ORIGINS", "https://a.example, https://b.example")
    assert load_settings().allowed_origins == ["https://a.example", "https://b.example"]
    monkeypatch.setenv("CHATROOM_DATABASE_URL", "mariadb+asyncmy://root@127.0.0.1/chat")
    assert load_settings().sqlalchemy_url == "mysql+asyncmy://root@127.0.0.1/chat"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PORT", "abc", "CHATROOM_PORT (port in the config file): Input should be a valid integer"),
        ("PORT", "70000", "CHATROOM_PORT"),
        ("DATABASE_URL", "postgres://x/y", "must start with mysql+asyncmy://"),
        ("REDIS_URL", "http://127.0.0.1", "CHATROOM_REDIS_URL (redis_url in the config file)"),
        ("ARCHIVER_SCHEDULE", "weekly", "CHATROOM_ARCHIVER_SCHEDULE"),
        ("ARCHIVER_CRON_WINDOW", "25:00-03:00", "must look like 02:00-06:00"),
        ("ARCHIVER_BATCH_SIZE", "0", "CHATROOM_ARCHIVER_BATCH_SIZE"),
        ("EMBEDDED_APPENDFSYNC", "sometimes", "must be always, everysec or no"),
        ("LOG_LEVEL", "LOUD", "CHATROOM_LOG_LEVEL"),
        ("MESSAGE_MAX_CHARS", "20000", "CHATROOM_MESSAGE_MAX_CHARS"),
        ("REDIS_REQUIRE_PERSISTENCE", "perhaps", "CHATROOM_REDIS_REQUIRE_PERSISTENCE"),
        ("TYPO", "1", "unknown setting CHATROOM_TYPO in the environment"),
        ("WORKERS", "0", "CHATROOM_WORKERS (workers in the config file): must be `auto`"),
        ("WORKERS", "many", "CHATROOM_WORKERS"),
    ],
)
def test_each_wrong_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(f"CHATROOM_{name}", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_workers_is_a_number_or_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatroom.web.workers import worker_count

    assert load_settings().workers == 1
    monkeypatch.setenv("CHATROOM_WORKERS", "3")
    assert worker_count(load_settings().workers) == 3
    monkeypatch.setenv("CHATROOM_WORKERS", "auto")
    assert worker_count(load_settings().workers) == len(os.sched_getaffinity(0))
    assert worker_count(load_settings(workers="2").workers) == 2  # the CLI's --workers


def test_inconsistent_session_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATROOM_SESSION_IDLE_S", "7200")
    monkeypatch.setenv("CHATROOM_SESSION_ABSOLUTE_S", "3600")
    with pytest.raises(ConfigError, match="session_absolute_s must not be shorter"):
        load_settings()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ("port = ", "is not valid TOML"),
        ("prot = 80", "unknown setting 'prot'"),
        ('port = "high"', "CHATROOM_PORT (port in the config file)"),
    ],
)
def test_config_file_mistakes(tmp_path: Path, content: str | None, expected: str) -> None:
    config = tmp_path / "chatroom.toml"
    if content is not None:
        config.write_text(content)
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_settings(config)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHATROOM_")}
    return subprocess.run(
        [sys.executable, "-m", "chatroom", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.processes
def test_the_cli_prints_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    bad = _cli("status", env={"CHATROOM_ARCHIVER_SCHEDULE": "weekly"})
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("chatroom: bad setting: CHATROOM_ARCHIVER_SCHEDULE")

    missing = _cli("status", "--config", str(tmp_path / "nope.toml"), env={})
    assert missing.returncode == 2 and "nope.toml does not exist" in missing.stderr

    unreachable = _cli(
        "status",
        env={
            "CHATROOM_REDIS_URL": "redis://127.0.0.1:1/0",
            "CHATROOM_DATA_DIR": str(tmp_path),
            "CHATROOM_LOG_LEVEL": "ERROR",
        },
    )
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    assert "cannot use Redis at redis://127.0.0.1:1/0" in unreachable.stderr
    assert "CHATROOM_REDIS_URL" in unreachable.stderr

    no_sql = _cli(
        "db",
        "upgrade",
        env={"CHATROOM_DATABASE_URL": "mysql+asyncmy://root@127.0.0.1:1/chat"},
    )
    assert no_sql.returncode == 1 and "Traceback" not in no_sql.stderr
    assert "cannot use the database at mysql+asyncmy://root@127.0.0.1:1/chat" in no_sql.stderr


def test_the_configuration_doc_lists_every_setting() -> None:
    from chatroom.settings_loader import reference_markdown

    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    assert reference_markdown() in doc, (
        "docs/configuration.md is out of date: paste in the output of "
        "python -c 'from chatroom.settings_loader import reference_markdown as r; print(r())'"
    )
