"""Headers every HTTP answer carries: no MIME sniffing, no framing, no cross-site referrer;
and on a site served over https, Strict-Transport-Security (no downgrade to http)."""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatroom.settings import Settings
from chatroom.web.origins import served_over_https

HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeadersMiddleware:
    """Pure ASGI (WebSockets pass straight through)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self._settings = settings
        max_age = settings.hsts_max_age_s
        # No includeSubDomains: other sites under the same domain are not ours to decide.
        self._hsts = (
            [(b"strict-transport-security", f"max-age={max_age}".encode())] if max_age else []
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = HEADERS
        if self._hsts and served_over_https(HTTPConnection(scope), self._settings):
            headers = [*HEADERS, *self._hsts]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, sending)
