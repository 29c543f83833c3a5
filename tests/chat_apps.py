"""App nodes in the test's own process: the app factory under uvicorn, in the test's loop.

For HTTP error paths and WebSocket refusals, which need the node's app, its uvicorn
configuration (the node's WebSocket protocol, the frame size limit) and real sockets, but
not a process of their own: no interpreter to start, and the node's state is at hand
(`node.state`) for a spy. The proofs about the real process (its start-up, signals,
several nodes, its log, the CLI) stay with `chat_servers.running_server`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from chat_servers import TEST_LIMITS, ChatNode
from chatroom.backends import Backends
from chatroom.settings import Settings
from chatroom.web.process import uvicorn_config
from chatroom.web.state import STATE_KEY, AppState
from waiting import wait_until

if TYPE_CHECKING:
    from conftest import Backend

STARTUP_TIMEOUT_S = 30.0


log = logging.getLogger(__name__)
# How long a node of the test's process may take to stop (uvicorn waits 10 s for sockets).
SHUTDOWN_TIMEOUT_S = 60.0


@dataclass
class AppNode(ChatNode):
    server: uvicorn.Server

    @property
    def state(self) -> AppState:
        """The node's shared state, as its lifespan built it (Starlette's lifespan state)."""
        state: AppState = self.server.lifespan.state[STATE_KEY]
        return state


@asynccontextmanager
async def running_app(
    backend: Backend, data_dir: Path, *, settings: dict[str, str] | None = None
) -> AsyncIterator[AppNode]:
    """One app node on a free port of 127.0.0.1, configured as `chatroom serve` configures
    it; `settings` are overrides by setting name, as for `running_server`."""
    chat_settings = Settings(
        redis_url=backend.redis_url,
        database_url=backend.database_url,
        data_dir=data_dir,
        **{**TEST_LIMITS, **(settings or {})},
    )
    backends = Backends(backend.redis_url, backend.database_url, embedded_redis=None)
    server = uvicorn.Server(uvicorn_config(chat_settings, backends, with_archiver=False))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    async def serve() -> None:
        try:
            await server.serve(sockets=[listener])
        except SystemExit as exc:  # uvicorn's answer to a failed start-up
            raise RuntimeError(f"the app node did not start (exit {exc.code})") from None

    serving = asyncio.create_task(serve(), name=f"app-node-{port}")
    try:
        await wait_until(
            lambda: server.started or serving.done(),
            STARTUP_TIMEOUT_S,
            what="the in-process app node started",
        )
        if serving.done():
            serving.result()  # raises what stopped it
            raise RuntimeError("the app node stopped while starting")
        yield AppNode(f"http://127.0.0.1:{port}", server)
    finally:
        server.should_exit = True
        # Bounded: once, after a 500-socket storm, the lifespan's shutdown did not end within
        # pytest's 120 s (2026-11-30, not reproduced alone; an open issue, see the session's
        # note). A test about something else must not hang on it.
        try:
            await asyncio.wait_for(serving, SHUTDOWN_TIMEOUT_S)
        except TimeoutError:
            log.warning("the app node on %s did not stop in %s s", port, SHUTDOWN_TIMEOUT_S)
        listener.close()
