"""From settings to the Redis URL and SQL engine every entry point runs on.

In embedded mode this starts (or finds) the packaged Valkey server and uses a SQLite
file, and applies migrations; in production it only checks that `chatroom db upgrade`
has run. Either way the rest of the code sees the same Redis URL and SQL engine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.embedded import EmbeddedRedis
from chatroom.settings import Settings
from chatroom.store import migrate
from chatroom.store.database import create_engine, ensure_database

log = logging.getLogger(__name__)


class SchemaOutOfDate(RuntimeError):
    pass


@dataclass
class Backends:
    redis_url: str
    database_url: str
    embedded_redis: EmbeddedRedis | None
    # The schema was applied (embedded) or checked (production) by the process that
    # started this one: a worker of `serve --workers N`.
    schema_ready: bool = False

    def close(self) -> None:
        if self.embedded_redis is not None:
            self.embedded_redis.stop()


def open_backends(settings: Settings) -> Backends:
    """Resolve where Redis and SQL are; call from the main thread (see EmbeddedRedis)."""
    embedded = None
    redis_url = settings.redis_url
    if redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir, appendfsync=settings.embedded_fsync)
        redis_url = embedded.acquire()
    if settings.embedded_database:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Backends(redis_url, settings.sqlalchemy_url, embedded)


async def open_database(
    settings: Settings, database_url: str, *, schema_ready: bool = False
) -> AsyncEngine:
    """The SQL engine, with the schema applied (embedded) or checked (production), unless
    that was done already (`schema_ready`)."""
    if schema_ready:
        return create_engine(database_url)
    if settings.embedded_database:
        engine = create_engine(database_url)
        await migrate.upgrade(engine)
        return engine
    engine = create_engine(database_url)
    current = await migrate.current_revision(engine)
    head = migrate.head_revision()
    if current != head:
        await engine.dispose()
        raise SchemaOutOfDate(
            f"the database schema is at {current or 'nothing'}, this version needs {head}: "
            "run `chatroom db upgrade` first"
        )
    return engine


async def upgrade_database(database_url: str) -> str:
    await ensure_database(database_url)
    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    return migrate.head_revision()
