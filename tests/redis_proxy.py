"""A TCP proxy in front of Redis that can turn into a black hole, for half-open tests.

`black_hole = True` makes every connection, open or new, swallow what either side sends
and answer nothing, without closing: what a client sees after a failover, a NAT timeout or
a paused VM. Back to False, new connections work again (open ones stay dead, as they would).

`paused = True` holds what either side sends, on every connection, and delivers it when
set back to False: a node stopped (SIGSTOP, a GC or VM pause) or a partition that heals
before TCP gives up.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(eq=False)
class _Link:
    """One proxied connection; once dead, it stays dead."""

    dead: bool


class RedisProxy:
    def __init__(self, redis_url: str) -> None:
        self._upstream = urlsplit(redis_url)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._open: set[_Link] = set()
        self._black_hole = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.connections = 0  # accepted so far
        self.url = ""

    @property
    def black_hole(self) -> bool:
        return self._black_hole

    @black_hole.setter
    def black_hole(self, on: bool) -> None:
        self._black_hole = on
        if on:
            for link in self._open:
                link.dead = True

    @property
    def paused(self) -> bool:
        return not self._flowing.is_set()

    @paused.setter
    def paused(self, on: bool) -> None:
        if on:
            self._flowing.clear()
        else:
            self._flowing.set()

    async def __aenter__(self) -> RedisProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        database = self._upstream.path.lstrip("/") or "0"
        if self._upstream.scheme == "unix":  # the embedded server: its db is in the query
            database = dict(
                part.split("=", 1) for part in self._upstream.query.split("&") if "=" in part
            ).get("db", "0")
        self.url = f"redis://127.0.0.1:{port}/{database}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._upstream.scheme == "unix":
            return await asyncio.open_unix_connection(self._upstream.path)
        return await asyncio.open_connection(self._upstream.hostname, self._upstream.port or 6379)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        link = _Link(dead=self._black_hole)
        self._open.add(link)
        up_reader, up_writer = await self._open_upstream()
        self._writers |= {writer, up_writer}
        pipes = [
            asyncio.create_task(self._pipe(link, reader, up_writer)),
            asyncio.create_task(self._pipe(link, up_reader, writer)),
        ]
        self._tasks.update(pipes)
        for pipe in pipes:
            pipe.add_done_callback(self._tasks.discard)
        # Either side closing closes both (a dead link's Redis side, once its client left).
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        self._open.discard(link)
        for side in (writer, up_writer):
            side.close()
            self._writers.discard(side)

    async def _pipe(
        self, link: _Link, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                if link.dead:
                    continue  # swallowed: neither an answer nor a close
                await self._flowing.wait()  # paused: held until it flows again
                sink.write(data)
                await sink.drain()
