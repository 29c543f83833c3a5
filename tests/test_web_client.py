"""Serving the built web client: hashed assets cached for good, history-mode routes
falling back to index.html, and a helpful page when the client is not built."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from chatroom.web.client import IMMUTABLE, WebClient
from chatroom.web.errors import install_error_handlers


def _app(dist: Path) -> FastAPI:
    client = WebClient(dist)
    app = FastAPI()

    @app.get("/api/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    install_error_handlers(app, client.page)
    client.mount(app)
    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def _built(tmp_path: Path) -> Path:
    dist = tmp_path / "client_dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><div id=app></div>")
    (dist / "assets" / "index-3f2a9c.js").write_text("console.log('chat')")
    (dist / "favicon.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("outside the dist folder")
    return dist


async def test_built_client_is_served(tmp_path: Path) -> None:
    async with _client(_app(_built(tmp_path))) as client:
        for path in ("/", "/rooms/lobby", "/login", "/admin/status"):
            page = await client.get(path)
            assert page.status_code == 200, path
            assert page.text == "<!doctype html><div id=app></div>"
            assert page.headers["cache-control"] == "no-cache"
            assert "script-src 'self';" in page.headers["content-security-policy"]
        asset = await client.get("/assets/index-3f2a9c.js")
        assert asset.status_code == 200 and asset.headers["cache-control"] == IMMUTABLE
        icon = await client.get("/favicon.svg")
        assert icon.status_code == 200 and icon.text == "<svg/>"

        # Unknown API paths and missing assets stay JSON 404s; the shell is for pages.
        for path in ("/api/nothing", "/assets/missing.js", "/ws/x"):
            missing = await client.get(path)
            assert missing.status_code == 404, path
            if not path.startswith("/assets/"):
                assert missing.json()["error"]["code"] == "not_found"
        assert (await client.get("/api/ping")).json() == {"pong": "yes"}
        # No way out of the dist folder.
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/assets/../../secret.txt"):
            answer = await client.get(path)
            assert "outside the dist folder" not in answer.text, path
        # A POST to a page is not the shell.
        assert (await client.post("/rooms/lobby")).status_code == 404


async def test_unbuilt_client_says_how_to_build_it(tmp_path: Path) -> None:
    async with _client(_app(tmp_path / "nothing-here")) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert "cd client &amp;&amp; npm ci &amp;&amp; npm run build" in page.text
        assert (await client.get("/api/ping")).status_code == 200
        assert (await client.get("/api/nothing")).status_code == 404
