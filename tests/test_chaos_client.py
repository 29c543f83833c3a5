"""The chaos campaign's client (bench/chaos/clients.py): how it answers the node's frames.

Its answers must be the web client's, or the checker blames the server for the client's
own mistakes (or misses the server's). Pure logic: the frames come from a list.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from bench.chaos.clients import Account, ChatClient, Pace
from bench.chaos.ledger import ClientLog, Ledger

ROOM = "lobby"


class BufferedFrames:
    """A socket whose frames all arrived already: iterating never waits."""

    def __init__(self, frames: list[dict[str, Any]]) -> None:
        self._frames = [orjson.dumps(frame).decode() for frame in frames]

    def __aiter__(self) -> AsyncIterator[str]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str]:
        for frame in self._frames:
            yield frame


def message(n: int) -> dict[str, Any]:
    return {"type": "message", "room": ROOM, "id": f"1700000000{n:03d}-0", "body": "x"}


@pytest.mark.processes  # an HTTP server of its own that never answers
async def test_a_resync_reloads_after_the_last_id_before_it_and_survives_a_dropped_socket() -> None:
    """A node that could not fill a gap sends `resync`, then goes on live after the gap.
    Frames read in one go are handled before the reload task runs: the reload must start
    at the last id received before the `resync`, or it starts after the gap and the
    skipped messages are never fetched."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)  # a node that never answers
    log = ClientLog("c0", 7)
    client = ChatClient(
        log,
        Account("c0", 7, "cookie"),
        [ROOM],
        [f"http://127.0.0.1:{silent.sockets[0].getsockname()[1]}"],
        0,
        Ledger(),
        Pace(per_client_per_s=1.0),
        random.Random(0),
    )
    frames = [
        {"type": "subscribed", "room": ROOM, "last_id": "1700000000000-0", "online": []},
        message(1),
        {"type": "resync", "room": ROOM},
        message(5),  # 2-4 were skipped by the node: only the reload can bring them
        message(6),
    ]
    client.subscribed[ROOM] = asyncio.Event()
    await client._read(BufferedFrames(frames))  # type: ignore[arg-type]
    try:
        await asyncio.sleep(0.05)  # the reload task has started
        view = log.rooms[ROOM]
        assert [resync.cursor for resync in view.resyncs] == [message(1)["id"]]
        assert view.cursor == message(6)["id"]
        # The socket drops: the reload, over HTTP, goes on (the next subscription's
        # `since` is message 6: nothing else would bring 2-4).
        client._connection_lost("connection lost")
        await asyncio.sleep(0.05)
        assert [not task.done() for task in client.reloads] == [True]
    finally:
        tasks = [*client.tasks, *client.reloads]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        silent.close()
        for writer in held:
            writer.close()
            await writer.wait_closed()
        await silent.wait_closed()
