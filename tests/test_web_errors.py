"""Error answers of the HTTP API when a backend gives out (web/errors.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chatroom.web.errors import install_error_handlers


async def _no_client_page(_request: object) -> None:
    return None


def _app(engine: AsyncEngine) -> FastAPI:
    app = FastAPI()

    @app.get("/api/rows")
    async def rows() -> dict[str, int]:
        async with engine.connect() as conn:
            return {"rows": int((await conn.execute(sa.text("SELECT 1"))).scalar_one())}

    install_error_handlers(app, _no_client_page)
    return app


async def test_every_sql_connection_busy_is_a_503_with_a_json_body(tmp_path: Path) -> None:
    # A real pool of one connection, held by someone else for longer than the pool waits.
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}",
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.2,
    )
    transport = httpx.ASGITransport(app=_app(engine), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/api/rows")).json() == {"rows": 1}
            async with engine.connect():
                busy = await client.get("/api/rows")
            # Before: sqlalchemy's pool TimeoutError fell through to a 500 (and a logged
            # stack trace per request in a reload storm).
            assert busy.status_code == 503
            assert busy.headers["retry-after"] == "5"
            assert busy.json()["error"]["code"] == "unavailable"
            assert (await client.get("/api/rows")).status_code == 200
    finally:
        await engine.dispose()
