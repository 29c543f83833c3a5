"""A TCP proxy in front of a store (Redis, MariaDB) that the nemesis can degrade.

The same idea as tests/redis_proxy.py, with more states:

- `open`: bytes flow both ways.
- `paused`: nothing is forwarded and nothing is read, in either direction, on open or new
  connections; the bytes wait in the kernel's buffers and flow on resume. What a process
  sees when the other side is SIGSTOPped, or a network stalls.
- `black_hole`: every connection, open or new, swallows what either side sends and
  answers nothing, without closing; such a connection stays dead after the heal (new
  ones work again): a half-open link after a failover or a NAT timeout.
- `refusing`: every open connection is closed and new ones are closed at once: the store
  is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from enum import StrEnum

CHUNK = 65536


class ProxyState(StrEnum):
    open = "open"
    paused = "paused"
    black_hole = "black_hole"
    refusing = "refusing"


@dataclass(eq=False)
class _Link:
    """One proxied connection; once dead (black hole), it stays dead."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    dead: bool = False


class StoreProxy:
    def __init__(self, name: str, *, host: str = "127.0.0.1", port: int = 0, unix: str = ""):
        self.name = name
        self._host = host
        self._port = port
        self._unix = unix
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._state = ProxyState.open
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.port = 0
        self.connections = 0

    @property
    def state(self) -> ProxyState:
        return self._state

    @property
    def refusing(self) -> bool:
        return self._state is ProxyState.refusing

    def set_state(self, state: ProxyState) -> None:
        self._state = state
        if state is ProxyState.paused:
            self._flowing.clear()
        else:
            self._flowing.set()
        if state is ProxyState.black_hole:
            for link in self._links:
                link.dead = True
        if state is ProxyState.refusing:
            for link in list(self._links):
                self._close(link)

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            self._close(link)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _close(self, link: _Link) -> None:
        for side in (link.client, link.upstream):
            if side is not None:
                with contextlib.suppress(Exception):
                    side.transport.abort()
        self._links.discard(link)

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._unix:
            return await asyncio.open_unix_connection(self._unix)
        return await asyncio.open_connection(self._host, self._port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        link = _Link(client=writer, dead=self._state is ProxyState.black_hole)
        self._links.add(link)
        try:
            await self._flowing.wait()
            if self.refusing:
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(self._open_upstream(), 10)
            except (OSError, TimeoutError):
                return  # the store is down: the client sees its connection closed
            link.upstream = up_writer
            pipes = [
                asyncio.create_task(self._pipe(link, reader, up_writer)),
                asyncio.create_task(self._pipe(link, up_reader, writer)),
            ]
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in pipes:
                    pipe.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._close(link)
            if task is not None:
                self._tasks.discard(task)

    async def _pipe(
        self, link: _Link, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                await self._flowing.wait()  # paused: read nothing, so the kernel holds it
                data = await source.read(CHUNK)
                if not data:
                    return
                await self._flowing.wait()  # paused while the read was pending
                if link.dead:
                    continue  # swallowed: neither an answer nor a close
                sink.write(data)
                await sink.drain()
