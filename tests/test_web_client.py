"""Serving the built web client: hashed assets cached for good, history-mode routes
falling back to index.html, and a helpful page when the client is not built."""

from __future__ import annotations

import gzip
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


async def test_assets_are_served_precompressed_to_browsers_that_take_it(tmp_path: Path) -> None:
    dist = _built(tmp_path)
    script = dist / "assets" / "index-3f2a9c.js"
    source = b"console.log('chat');\n" * 200
    script.write_bytes(source)
    gzipped = gzip.compress(source)
    script.with_name(script.name + ".gz").write_bytes(gzipped)
    script.with_name(script.name + ".br").write_bytes(b"brotli stand-in")
    async with _client(_app(dist)) as client:
        for accept, encoding, sent in [
            ("gzip, deflate, br, zstd", "br", b"brotli stand-in"),
            ("gzip", "gzip", gzipped),
            ("br;q=0, gzip", "gzip", gzipped),
            ("identity", None, source),
        ]:
            headers = {"Accept-Encoding": accept}
            async with client.stream("GET", "/assets/index-3f2a9c.js", headers=headers) as answer:
                raw = b"".join([chunk async for chunk in answer.aiter_raw()])
            assert answer.status_code == 200, accept
            assert answer.headers["vary"] == "Accept-Encoding"
            assert answer.headers["cache-control"] == IMMUTABLE
            assert answer.headers["content-type"].startswith("text/javascript"), accept
            assert answer.headers.get("content-encoding") == encoding, accept
            assert raw == sent, accept
            assert answer.headers["content-length"] == str(len(sent))
        assert gzip.decompress(gzipped) == source
        # An asset without copies (too small to gain) is sent as it is.
        icon_css = dist / "assets" / "tiny.css"
        icon_css.write_text("a{}")
        tiny = await client.get("/assets/tiny.css", headers={"Accept-Encoding": "gzip, br"})
        assert tiny.status_code == 200 and "content-encoding" not in tiny.headers
        assert tiny.text == "a{}"
