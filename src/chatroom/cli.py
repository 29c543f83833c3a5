"""The `chatroom` command: builds everything from settings; nothing imports it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from chatroom.backends import Backends, SchemaOutOfDate, open_backends, open_database
from chatroom.backends import upgrade_database as run_upgrade
from chatroom.embedded import EmbeddedServerError
from chatroom.logs import configure_logging
from chatroom.outages import first_line
from chatroom.redis_client import connect
from chatroom.settings import Settings
from chatroom.settings_loader import ConfigError, load_settings
from chatroom.status import collect_status, render_table
from chatroom.streams.persistence import DurabilityUnavailable, PersistenceAtRisk

app = typer.Typer(
    name="chatroom",
    help="A self-hostable real-time chat server: Redis Streams for speed, SQL for history.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The SQL schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

T = TypeVar("T")
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="A TOML config file (or set CHATROOM_CONFIG).", exists=False),
]


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"chatroom: {message}", err=True)
    raise typer.Exit(code)


def settings_from(config: Path | None, **overrides: object) -> Settings:
    try:
        settings = load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        fail(f"bad setting: {exc}", code=2)
    configure_logging(settings.log_level)
    return settings


@contextmanager
def explained_failures(settings: Settings) -> Iterator[None]:
    """Turn the failures an operator can fix into one line with the fix."""
    try:
        yield
    except EmbeddedServerError as exc:
        fail(str(exc))
    except (PersistenceAtRisk, DurabilityUnavailable) as exc:
        fail(str(exc))
    except SchemaOutOfDate as exc:
        fail(str(exc))
    except RedisError as exc:
        where = settings.redis_url or "the embedded server"
        fail(f"cannot use Redis at {where}: {exc} (check CHATROOM_REDIS_URL)")
    except (SQLAlchemyError, OSError) as exc:
        where = settings.database_url or "the SQLite file"
        fail(f"cannot use the database at {where}: {first_line(exc)} (check CHATROOM_DATABASE_URL)")


def run_with_backends(settings: Settings, work: Callable[[Backends], Coroutine[Any, Any, T]]) -> T:
    with explained_failures(settings):
        backends = open_backends(settings)
        try:
            return asyncio.run(work(backends))
        finally:
            backends.close()


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Per room and in total: stream length, backlog, pending, archived, dead letters."""
    settings = settings_from(config)

    async def work(backends: Backends) -> str:
        redis = connect(backends.redis_url)
        engine = await open_database(settings, backends.database_url)
        try:
            found = await collect_status(redis, engine, settings.durability)
        finally:
            await redis.aclose()
            await engine.dispose()
        return json.dumps(found.as_json(), indent=2) if as_json else render_table(found)

    typer.echo(run_with_backends(settings, work))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[
        str | None,
        typer.Option(help="App-node processes on the port, or `auto` (one per core); default 1."),
    ] = None,
    no_archiver: Annotated[
        bool, typer.Option("--no-archiver", help="Leave archiving to `chatroom archive`.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """An app node (or N of them on one port): HTTP API, WebSocket, the web client, and an
    in-process archiver."""
    from chatroom.web.process import run_server

    settings = settings_from(config, host=host, port=port, workers=workers)
    with explained_failures(settings):
        backends = open_backends(settings)
        try:
            run_server(settings, backends, with_archiver=not no_archiver)
        finally:
            backends.close()


@app.command()
def archive(
    once: Annotated[
        bool, typer.Option("--once", help="Drain the whole backlog, then exit (for cron).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """A standalone archiver: moves messages from the room streams into SQL."""
    from chatroom.archiver.process import run_archiver

    settings = settings_from(config)
    with explained_failures(settings):
        backends = open_backends(settings)
        try:
            code = run_archiver(settings, backends, once=once)
        finally:
            backends.close()
    raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Apply the schema migrations (creating the MySQL/MariaDB database if needed)."""
    settings = settings_from(config)
    if settings.embedded_database:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    with explained_failures(settings):
        head = asyncio.run(run_upgrade(settings.sqlalchemy_url))
    typer.echo(f"database schema at revision {head}")


def main() -> None:
    app()
