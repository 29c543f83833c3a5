"""The async SQL engine for MySQL/MariaDB (asyncmy) or SQLite (aiosqlite)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

# Strict mode: a value that does not fit is an error, never a silent truncation.
MYSQL_SQL_MODE = (
    "STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION"
)


# An execution option of engines whose rowcount is the rows a statement changed: SQLite
# always; MySQL/MariaDB only without CLIENT_FOUND_ROWS, which SQLAlchemy turns on, and
# under which a no-op ON DUPLICATE KEY UPDATE counts a duplicate as one row, like an insert.
CHANGED_ROWS = "chatroom_changed_rows"
CLIENT_FOUND_ROWS = 2  # the capability flag's value in the MySQL protocol
CR_SERVER_LOST = 2013  # the client error "Lost connection to MySQL server"


def counts_changed_rows(conn: AsyncConnection) -> bool:
    """Whether `rowcount` on this connection counts the rows actually inserted or changed."""
    return conn.dialect.name == "sqlite" or bool(
        conn.sync_engine.get_execution_options().get(CHANGED_ROWS)
    )


def create_engine(
    url: str, *, pool_size: int = 5, changed_rows: bool = False, prepared_statements: int = 0
) -> AsyncEngine:
    """`changed_rows`: MySQL/MariaDB connections without CLIENT_FOUND_ROWS, so that an
    upsert's rowcount is the rows it inserted (only for statements that expect that).
    `prepared_statements`: MySQL/MariaDB connections that run parameterized statements as
    server-side prepared statements (binary protocol, no escaping), keeping this many per
    connection; on MariaDB an executemany is then one bulk execution (for bulk writers)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=3600,
        connect_args={
            "charset": "utf8mb4",
            "init_command": f"SET SESSION sql_mode='{MYSQL_SQL_MODE}'",
            **({"stmt_cache_size": prepared_statements} if prepared_statements else {}),
        },
    )
    if changed_rows:
        sa.event.listen(engine.sync_engine, "do_connect", _without_found_rows)
        engine = engine.execution_options(**{CHANGED_ROWS: True})
    # Last: it makes the connection, with the parameters the listeners above adjusted.
    sa.event.listen(engine.sync_engine, "do_connect", connect_or_unreachable)
    return engine


def create_probe_engine(url: URL) -> AsyncEngine:
    """An engine of fresh connections only (no pool), to ask whether SQL answers at all;
    a drop while connecting is SQL down there too (`connect_or_unreachable`)."""
    engine = create_async_engine(url, poolclass=NullPool)
    sa.event.listen(engine.sync_engine, "do_connect", connect_or_unreachable)
    return engine


def connect_or_unreachable(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
    """Connect; a server that drops the socket while asyncmy sets it up makes asyncmy raise
    RuntimeError ("Transport does not expose socket instance"), which no caller takes for
    SQL being down: it becomes the driver's "lost connection" error, as any other drop."""
    try:
        return dialect.connect(*cargs, **cparams)
    except RuntimeError as exc:
        raise dialect.loaded_dbapi.OperationalError(
            CR_SERVER_LOST, f"Lost connection to MySQL server while connecting ({exc})"
        ) from exc


def _without_found_rows(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
    params["client_flag"] = int(params.get("client_flag", 0)) & ~CLIENT_FOUND_ROWS


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit survives power loss, so the archiver may XACK right after it.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


async def ensure_database(url: str) -> None:
    """Create the MySQL/MariaDB database named in the URL if it does not exist yet."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" or not parsed.database:
        return
    server = create_engine(parsed.set(database="").render_as_string(hide_password=False))
    try:
        async with server.begin() as conn:
            name = parsed.database.replace("`", "``")
            await conn.execute(
                sa.text(
                    f"CREATE DATABASE IF NOT EXISTS `{name}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                )
            )
    finally:
        await server.dispose()
