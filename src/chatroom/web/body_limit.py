"""Request bodies: at most `request_body_max_bytes`, arriving at a steady pace.

A pure ASGI middleware, before anything parses a body. A `Content-Length` over the limit
is refused at once, before the app runs and before a byte of the body is read; a body
without one (chunked) is counted as it streams, and refused the moment it passes the
limit. Both answer `413 body_too_large` with the usual error body. A body whose next
chunk does not arrive within `request_body_timeout_s` is `408 body_timeout` (a slow
body holds a connection and a task as long as it trickles).

Starlette's `max_body_size` (and FastAPI's) do the counting too, but answer a
`Content-Length` refusal in plain text (or `{"detail"}`) and only once the app reads the
body; this answers before the app runs, in the contract's error body.

A refusal raised while the app reads the body is an `HTTPException`: FastAPI passes it on
and the app's own error handler writes the answer (web/errors.py), or, should nobody
catch it, this middleware does, if the answer has not started.
"""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BODY_TOO_LARGE = "body_too_large"
BODY_TIMEOUT = "body_timeout"


class BodyRefused(HTTPException):
    """The body is over the limit (413) or too slow (408)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status_code=status, detail=message, headers={"Connection": "close"})
        self.code = code


def too_large(max_bytes: int) -> BodyRefused:
    return BodyRefused(413, BODY_TOO_LARGE, f"the request body is over {max_bytes} bytes")


def too_slow(timeout_s: float) -> BodyRefused:
    return BodyRefused(408, BODY_TIMEOUT, f"the request body stalled for {timeout_s:g} s")


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, or None (absent or unreadable: the count decides)."""
    text = Headers(scope=scope).get("content-length")
    if text is None or not text.isdigit():
        return None
    return int(text)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.max_bytes
        length = declared_length(scope)
        if length is not None and length > max_bytes:
            await _answer(too_large(max_bytes), scope, receive, send)
            return
        timeout_s = self.timeout_s
        received = 0
        body_done = False
        started = False

        async def receiving() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body, a receive waits for the disconnect: no timeout
                return await receive()
            try:
                async with asyncio.timeout(timeout_s):
                    message = await receive()
            except TimeoutError:
                raise too_slow(timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise too_large(max_bytes)
                body_done = not message.get("more_body", False)
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        except BodyRefused as refused:
            if started:
                raise
            await _answer(refused, scope, receive, send)


async def _answer(refused: BodyRefused, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse(
        {"error": {"code": refused.code, "message": refused.detail}},
        status_code=refused.status_code,
        headers=refused.headers,
    )
    await response(scope, receive, send)
