"""Is a request's Origin one of the site's own? The defence against cross-site requests
that carry the session cookie (cross-site WebSocket hijacking, login CSRF). And is the
site served over https (the Secure cookie, HSTS)?

An origin is compared as what a browser means by one: scheme, host and port together
(`https://chat.example` is not `http://chat.example`, and `:443` is the same as none).
Whatever cannot be read as an origin is not the site's: a refusal, never an error.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from chatroom.settings import Settings

# (scheme, host, port): host in lower case, IPv6 without brackets, the port always given.
Origin = tuple[str, str, int]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# The scheme of an ASGI scope (a WebSocket's is ws/wss) as the page's origin names it.
_PAGE_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def parse_origin(text: str) -> Origin | None:
    """The origin `text` names (an Origin header, a configured origin), or None: not an
    http(s) origin, `null`, malformed (`http://[`), or with a path, query or user."""
    try:
        parts = urlsplit(text.strip())
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port  # raises ValueError for a port that is not one
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def request_scheme(conn: HTTPConnection) -> str:
    """http or https: how the client reached us (a trusted proxy's X-Forwarded-Proto is
    applied to the scope by uvicorn, CHATROOM_FORWARDED_ALLOW_IPS)."""
    return _PAGE_SCHEMES.get(str(conn.scope.get("scheme", "http")), "http")


def own_origin(conn: HTTPConnection) -> Origin | None:
    """The origin the request was addressed to: its scheme and its Host header."""
    host = conn.headers.get("host")
    if not host:
        return None
    return parse_origin(f"{request_scheme(conn)}://{host}")


def origin_allowed(conn: HTTPConnection, settings: Settings) -> bool:
    """True if the request has no Origin or an allowed one.

    With `allowed_origins` configured, the Origin must be one of them; without, it must be
    the request's own (its scheme, and the host and port of its Host header).
    A missing Origin passes here: callers that need one (a cookie on /ws) check that.
    """
    header = conn.headers.get("origin")
    if header is None:
        return True
    origin = parse_origin(header)
    if origin is None:
        return False
    if settings.allowed_origins:
        return origin in {parse_origin(allowed) for allowed in settings.allowed_origins}
    return origin == own_origin(conn)


def served_over_https(conn: HTTPConnection, settings: Settings) -> bool:
    """Whether the browser reached the site over https: the request came over https
    (directly, or so says a trusted proxy), or every configured origin is https."""
    if request_scheme(conn) == "https":
        return True
    configured = [parse_origin(allowed) for allowed in settings.allowed_origins]
    return bool(configured) and all(o is not None and o[0] == "https" for o in configured)
