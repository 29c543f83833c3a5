"""The built web client (Vite output in `client_dist/`), served by the app node.

`/assets/*` are content-hashed: cached for a year, immutable, and served precompressed: the
build writes a brotli (`.br`) and a gzip (`.gz`) copy beside each text asset
(client/scripts/precompress.mjs), and the smallest copy the request's Accept-Encoding takes
is sent with its Content-Encoding and `Vary: Accept-Encoding`. Nothing is compressed per
request, and nothing else is (never the WebSocket, nor the API). Every other browser page
(`/`, `/rooms/lobby`, ...) is the client's `index.html`, never cached, so a new release
is picked up at the next load. Without a build, `/` says how to make one.
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

DIST = Path(__file__).with_name("client_dist")
IMMUTABLE = "public, max-age=31536000, immutable"
# The shell loads only its own scripts: an injected <script> (XSS) does not run.
# Inline styles stay allowed: Vue binds style attributes.
SHELL_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Paths the client never owns: an unknown one there is a JSON 404, not the app shell.
_NOT_CLIENT = ("/api/", "/ws", "/docs", "/redoc", "/openapi.json", "/metrics", "/assets/")

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chatroom</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 3em auto">
<h1>Chatroom is running</h1>
<p>The web client is not built yet. From the source tree, build it with:</p>
<pre>cd client &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p>then restart <code>chatroom serve</code>. The HTTP API is up: see <a href="/docs">/docs</a>.</p>
</body></html>
"""


# The precompressed copies the build writes, best first: (Content-Encoding, file suffix).
PRECOMPRESSED = (("br", ".br"), ("gzip", ".gz"))


def accepted_encodings(scope: Scope) -> set[str]:
    """The content codings the request accepts (`q=0` refuses one)."""
    accepted: set[str] = set()
    for name, value in scope.get("headers", ()):
        if name != b"accept-encoding":
            continue
        for part in value.decode("latin-1").split(","):
            coding, _, params = part.strip().partition(";")
            refused = params.replace(" ", "").lower() in ("q=0", "q=0.0", "q=0.00", "q=0.000")
            if coding and not refused:
                accepted.add(coding.strip().lower())
    return accepted


class ImmutableAssets(StaticFiles):
    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        original = Path(full_path)
        accepted = accepted_encodings(scope)
        encoding = None
        for coding, suffix in PRECOMPRESSED:
            variant = original.with_name(original.name + suffix)
            if (coding in accepted or "*" in accepted) and variant.is_file():
                full_path, stat_result, encoding = variant, variant.stat(), coding
                break
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = IMMUTABLE
        response.headers["Vary"] = "Accept-Encoding"
        if encoding is not None:
            response.headers["Content-Encoding"] = encoding
            media_type, _ = mimetypes.guess_type(original.name)
            if media_type is not None and response.status_code != 304:
                charset = "; charset=utf-8" if media_type.startswith("text/") else ""
                if media_type == "application/javascript":
                    media_type = "text/javascript"
                    charset = "; charset=utf-8"
                response.headers["Content-Type"] = media_type + charset
        return response


class WebClient:
    def __init__(self, dist: Path) -> None:
        self.dist = dist.resolve()
        self.index = self.dist / "index.html"

    @property
    def built(self) -> bool:
        return self.index.is_file()

    def mount(self, app: FastAPI) -> None:
        assets = self.dist / "assets"
        if self.built and assets.is_dir():
            app.mount("/assets", ImmutableAssets(directory=assets), name="assets")

    async def page(self, request: Request) -> Response | None:
        """The answer to a GET no route matched: a top-level file, the app shell, or None."""
        path = request.url.path
        if path.startswith(_NOT_CLIENT):
            return None
        if not self.built:
            return HTMLResponse(NOT_BUILT, headers={"Cache-Control": "no-store"})
        file = self._top_level_file(path)
        if file is not None:
            return FileResponse(file, headers={"Cache-Control": "public, max-age=3600"})
        return FileResponse(
            self.index,
            headers={"Cache-Control": "no-cache", "Content-Security-Policy": SHELL_POLICY},
        )

    def _top_level_file(self, path: str) -> Path | None:
        """A file such as /favicon.svg, only straight inside the dist folder."""
        name = path.lstrip("/")
        if not name or "/" in name or "\\" in name or name.startswith("."):
            return None
        candidate = self.dist / name
        return candidate if candidate.is_file() and candidate.parent == self.dist else None
