"""Is a request's Origin one of the site's own? The defence against cross-site requests
that carry the session cookie (cross-site WebSocket hijacking, login CSRF)."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from chatroom.settings import Settings


def origin_allowed(conn: HTTPConnection, settings: Settings) -> bool:
    """True if the request has no Origin or an allowed one.

    With `allowed_origins` configured, the Origin must be one of them exactly; without,
    its host must be the request's own Host (the site is served from one name).
    A missing Origin passes here: callers that need one (a cookie on /ws) check that.
    """
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    if settings.allowed_origins:
        return origin.rstrip("/") in {o.rstrip("/") for o in settings.allowed_origins}
    host = conn.headers.get("host")
    if not host or origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == host.lower()
