"""The SQL engine (store/database.py): what a dropped connection looks like to callers."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.mysql.asyncmy import MySQLDialect_asyncmy

from chatroom.outages import SQL_DOWN
from chatroom.store.archive_writes import answers_on_a_fresh_connection
from chatroom.store.database import create_engine


async def test_a_server_dropping_the_socket_while_asyncmy_sets_it_up_is_sql_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """asyncmy raises RuntimeError ("Transport does not expose socket instance") when the
    server (or a proxy in front of it) drops the socket between the TCP connect and its
    keep-alive setup. Seen in a chaos campaign with SQL unreachable: it escaped every
    `except SQL_DOWN` and closed a user's WebSocket with 1011. It must be SQL being down,
    like any other lost connection."""
    engine = create_engine("mysql+asyncmy://root@127.0.0.1:1/nowhere")
    dialect = engine.sync_engine.dialect

    def dropped(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("Transport does not expose socket instance")

    monkeypatch.setattr(dialect, "connect", dropped)
    try:
        with pytest.raises(SQL_DOWN) as caught:
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        assert isinstance(caught.value, sa.exc.OperationalError)
        assert "Lost connection" in str(caught.value)
    finally:
        await engine.dispose()


async def test_a_drop_while_connecting_makes_the_archivers_probe_say_sql_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The archiver's outage probe (a fresh connection of its own) met the same drop on
    uvloop: the RuntimeError escaped it and the archiver exited (a chaos campaign, SQL
    unreachable). It must answer "not reachable", like any other failed connect."""

    def dropped(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("Transport does not expose socket instance")

    monkeypatch.setattr(MySQLDialect_asyncmy, "connect", dropped)
    engine = create_engine("mysql+asyncmy://root@127.0.0.1:1/nowhere")
    try:
        assert await answers_on_a_fresh_connection(engine, timeout_s=5) is False
    finally:
        await engine.dispose()
