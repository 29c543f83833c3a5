"""`/ws` served straight by its endpoint, past the HTTP middleware and the router.

Every ASGI layer between the server and an endpoint keeps a suspended coroutine (and
some keep objects of their own: FastAPI's exit stacks, Starlette's exception wrappers)
for as long as the request lasts. For an HTTP request that is milliseconds; for a
WebSocket it is the whole connection, and most connections are idle ones. Measured with
tracemalloc on an idle node, the layers of this app between uvicorn and the endpoint
(FastAPI and Starlette's application, the server-error and exception middleware, the
security headers, metrics and body limit middleware, FastAPI's exit stack, the router,
the route and its exception wrapper) held about 9 KiB per open socket.

None of them does anything for a WebSocket on `/ws`: the middleware of this app pass a
`websocket` scope through untouched (they act on HTTP answers), there is no dependency to
inject and no path parameter to match, and the endpoint answers every refusal itself
(`ws._refuse`). So `ChatroomApp` hands such a scope to the endpoint itself; everything
else goes through FastAPI as before. An exception out of the endpoint reaches uvicorn,
which logs it and closes the socket (1011), as it did through the stack.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from chatroom.web.ws import WS_PATH, websocket_endpoint


class ChatroomApp(FastAPI):
    """The app: FastAPI, with a WebSocket on `/ws` served without the layers above."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and _route_path(scope) == WS_PATH:
            scope["app"] = self
            await websocket_endpoint(WebSocket(scope, receive=receive, send=send))
            return
        await super().__call__(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path without the app's mount point (`root_path`), as Starlette's router sees it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
