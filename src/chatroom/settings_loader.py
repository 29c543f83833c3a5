"""Loading `Settings`: the TOML file (`--config` or CHATROOM_CONFIG) under the
environment, unknown names refused, and every mistake one line for the operator
(`ConfigError`); and the reference table docs/configuration.md shows (`reference_markdown`).
"""

from __future__ import annotations

import json
import os
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsError,
)

from chatroom.cron_window import CronWindow
from chatroom.settings import CONFIG_ENV, ENV_PREFIX, NOT_SETTINGS, Settings


class ConfigError(Exception):
    """A wrong setting: the message is the one line shown to the operator."""


def _setting_label(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()} ({name} in the config file)"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, raising ConfigError with one clear line on any mistake."""
    path = config_file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    from_file: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as handle:
                from_file = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        unknown = sorted(set(from_file) - set(Settings.model_fields))
        if unknown:
            raise ConfigError(f"config file {path}: unknown setting {unknown[0]!r}")
    env_names = {f"{ENV_PREFIX}{n.upper()}" for n in Settings.model_fields} | {CONFIG_ENV}
    stray = sorted(
        k
        for k in os.environ
        if k.startswith(ENV_PREFIX) and k not in env_names and not k.startswith(NOT_SETTINGS)
    )
    if stray:
        raise ConfigError(f"unknown setting {stray[0]} in the environment")

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, InitSettingsSource(settings_cls, from_file))

    try:
        loaded = _FromFile(**overrides)
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = error["loc"][0] if error["loc"] else ""
        label = _setting_label(str(where)) if where else "settings"
        message = error["msg"].removeprefix("Value error, ")
        value = error.get("input")
        shown = f" (got {value!r})" if where and not isinstance(value, dict) else ""
        raise ConfigError(f"{label}: {message}{shown}") from None
    return loaded


def reference_markdown() -> str:
    """The table of every setting for docs/configuration.md (a test keeps the doc true)."""
    rows = [
        "| setting (TOML) | environment variable | default | what it is |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = (
            "unset"
            if default is None
            else json.dumps(
                str(default) if isinstance(default, (Path, StrEnum, CronWindow)) else default
            )
        )
        rows.append(
            f"| `{name}` | `{ENV_PREFIX}{name.upper()}` | `{shown}` | {field.description} |"
        )
    return "\n".join(rows) + "\n"
