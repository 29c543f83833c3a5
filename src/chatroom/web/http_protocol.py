"""The node's HTTP protocol: uvicorn's httptools protocol with slowloris bounds.

uvicorn (0.54) has no timeout before a request's headers are complete: its keep-alive
timer runs only between requests and stops at the first byte of the next one, so a
client that opens a connection and sends nothing, or trickles a header a byte at a time,
holds it for as long as it likes; and httptools sets no bound on a header's size. Its
`limit_concurrency` answers new requests with 503 once the node holds that many
connections, but closes none, and WebSocket upgrades pass it by.

`GuardedHttpToolsProtocol` adds, per connection:
- admission by the node's `ConnectionGuard` (web/connection_guard.py): over the node's
  connection limit, or over the client address's, the connection is closed at once;
- a header deadline: the request line and headers must be complete within
  `request_header_timeout_s` of the connection opening, or of the request's first byte
  on a kept-alive connection; else the connection is closed;
- a header size bound: more than `request_header_max_bytes` before the headers end is
  answered 431 and closed.
Once the headers are in, the body's pace is the body limit's (web/body_limit.py), and
an upgraded WebSocket's is uvicorn's ping timeout's.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from chatroom.web.connection_guard import ConnectionGuard

_HEADERS_TOO_LARGE = json.dumps(
    {"error": {"code": "headers_too_large", "message": "the request headers are too long"}}
).encode()


class NodeConfig(uvicorn.Config):
    """uvicorn's configuration plus what the node's protocols share: the guard, and the
    header limits."""

    def __init__(
        self,
        app: Any,
        *,
        guard: ConnectionGuard,
        header_timeout_s: float,
        header_max_bytes: int,
        **options: Any,
    ) -> None:
        super().__init__(app, **options)
        self.guard = guard
        self.header_timeout_s = header_timeout_s
        self.header_max_bytes = header_max_bytes


def guard_of(config: uvicorn.Config) -> ConnectionGuard | None:
    return config.guard if isinstance(config, NodeConfig) else None


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._guard = guard_of(config)
        if isinstance(config, NodeConfig):
            self._header_timeout_s: float | None = config.header_timeout_s
            self._header_max_bytes = config.header_max_bytes
        else:
            self._header_timeout_s, self._header_max_bytes = None, 1 << 62
        self._header_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        guard = self._guard
        if guard is not None and not guard.admit(transport, self.client and self.client[0]):
            transport.abort()
            return
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_in()
        if self._guard is not None:
            self._guard.release(self.transport)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        waiting = self._header_deadline is not None
        super().data_received(data)
        if waiting and self._header_deadline is not None:  # all of it was header
            self._header_bytes += len(data)
            if self._header_bytes > self._header_max_bytes:
                self._refuse_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:  # a kept-alive connection's next request
            self._await_headers()

    def on_headers_complete(self) -> None:
        self._headers_in()
        super().on_headers_complete()

    def _await_headers(self) -> None:
        if self._header_timeout_s is None or self.transport.is_closing():
            return
        self._header_bytes = 0
        self._header_deadline = self.loop.call_later(self._header_timeout_s, self._too_slow)

    def _headers_in(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse_headers(self) -> None:
        self._headers_in()
        if self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(_HEADERS_TOO_LARGE)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + _HEADERS_TOO_LARGE
        )
        self.transport.close()
