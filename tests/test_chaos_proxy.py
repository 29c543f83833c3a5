"""The chaos campaign's store proxy in its own process (bench/chaos/proxy_process.py).

The nemesis steers it from the campaign's process; each state must be what it was when
the proxy ran in the campaign's loop (bench/chaos/proxy.py), and in force as soon as
`set_state` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from bench.chaos.proxy import ProxyState
from bench.chaos.proxy_process import ProxyProcess

pytestmark = pytest.mark.processes

QUIET_S = 0.3  # long enough for a loopback echo to come back if anything flows


class EchoStore:
    """A store that answers what it gets; its side of each link is closed at the end."""

    def __init__(self) -> None:
        self.links: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.links.append(writer)
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()

    async def close(self) -> None:
        for writer in self.links:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[ProxyProcess]:
    """A proxy process in front of an echo server."""
    echo = EchoStore()
    store = await asyncio.start_server(echo.serve, "127.0.0.1", 0)
    found = ProxyProcess("store", upstream_port=store.sockets[0].getsockname()[1], log_dir=tmp_path)
    await found.start()
    try:
        yield found
    finally:
        await found.stop()
        store.close()
        await echo.close()
        await store.wait_closed()


@pytest.fixture
async def opened() -> AsyncIterator[list[asyncio.StreamWriter]]:
    """The test's connections to the proxy, closed at its end."""
    writers: list[asyncio.StreamWriter] = []
    yield writers
    for writer in writers:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _link(
    proxy: ProxyProcess, opened: list[asyncio.StreamWriter]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    opened.append(writer)
    return reader, writer


async def _echoes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bool:
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.readexactly(len(data)), QUIET_S) == data
    except TimeoutError:
        return False


async def test_paused_holds_the_bytes_until_it_opens_again(
    proxy: ProxyProcess, opened: list[asyncio.StreamWriter]
) -> None:
    reader, writer = await _link(proxy, opened)
    assert await _echoes(reader, writer, b"ping")
    await proxy.set_state(ProxyState.paused)
    assert proxy.state is ProxyState.paused
    assert not await _echoes(reader, writer, b"held")
    await proxy.set_state(ProxyState.open)
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"held"


async def test_refusing_closes_open_links_and_new_ones(
    proxy: ProxyProcess, opened: list[asyncio.StreamWriter]
) -> None:
    reader, writer = await _link(proxy, opened)
    assert await _echoes(reader, writer, b"ping")
    await proxy.set_state(ProxyState.refusing)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    new_reader, _ = await _link(proxy, opened)
    assert await asyncio.wait_for(new_reader.read(), 5) == b""
    await proxy.set_state(ProxyState.open)
    reader, writer = await _link(proxy, opened)
    assert await _echoes(reader, writer, b"back")


async def test_a_black_hole_swallows_without_closing_and_its_links_stay_dead(
    proxy: ProxyProcess, opened: list[asyncio.StreamWriter]
) -> None:
    reader, writer = await _link(proxy, opened)
    assert await _echoes(reader, writer, b"ping")
    await proxy.set_state(ProxyState.black_hole)
    assert not await _echoes(reader, writer, b"lost")
    assert not reader.at_eof()
    await proxy.set_state(ProxyState.open)
    assert not await _echoes(reader, writer, b"dead")  # a half-open link stays dead
    fresh_reader, fresh_writer = await _link(proxy, opened)
    assert await _echoes(fresh_reader, fresh_writer, b"new")


async def test_stopping_ends_the_process_and_its_links(
    proxy: ProxyProcess, opened: list[asyncio.StreamWriter]
) -> None:
    reader, writer = await _link(proxy, opened)
    assert await _echoes(reader, writer, b"ping")
    await proxy.stop()
    assert await asyncio.wait_for(reader.read(), 5) == b""
