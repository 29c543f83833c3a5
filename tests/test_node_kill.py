"""An app node killed (-9) while its clients' sends are in flight: they reconnect to the
other node, resume from the last message they received in order, and resend what was
never answered with the same client_id. Every acknowledged message is stored once, under
its acknowledged id, and every client's sequence of the room has no gap and no repeat."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.exceptions import ConnectionClosed

from chat_servers import ChatNode, ChatServer
from chatroom.domain.stream_ids import StreamId
from conftest import SignUp, StartServer
from test_archiver_support import archived_rows
from waiting import wait_until
from ws_clients import ChatSocket, open_socket

SETTINGS = {
    "send_rate_per_s": "100000",
    "send_burst": "100000",
    "frame_rate_per_s": "100000",
    "frame_burst": "100000",
}
CLIENTS = 4  # two on the node that dies, two on the one that lives
SENDS = 60  # each
KILL_AFTER_ACKS = 60  # of all clients together: the rest are in flight or still to come
SEND_EVERY_S = 0.01


@dataclass
class Client:
    """One user's socket: sends, what came back, and the room's sequence as received."""

    name: str
    http: httpx.AsyncClient
    nodes: list[ChatNode]
    node: int
    acked: dict[str, str] = field(default_factory=dict)  # client_id -> id
    unanswered: list[str] = field(default_factory=list)  # client_ids, in send order
    received: list[str] = field(default_factory=list)  # message ids, every connection
    start: str | None = None  # the subscribed.last_id of the first subscription
    reconnects: int = 0
    socket: ChatSocket | None = None

    @property
    def since(self) -> str | None:
        """The last id received in order: what the next subscription resumes from."""
        return self.received[-1] if self.received else self.start

    async def connect(self) -> None:
        self.socket = await open_socket(self.nodes[self.node], self.http)
        subscribed = await self.socket.subscribe(since=self.since)
        if self.start is None:
            self.start = str(subscribed["last_id"])
        for client_id in list(self.unanswered):  # resent with the same client_id
            await self._send(client_id)

    async def _send(self, client_id: str) -> None:
        assert self.socket is not None
        frame = {"type": "send", "room": "lobby", "body": f"{client_id}", "client_id": client_id}
        await self.socket.send(frame)

    async def send_all(self) -> None:
        for i in range(SENDS):
            client_id = f"{self.name}-{i}"
            self.unanswered.append(client_id)
            with contextlib.suppress(ConnectionClosed):
                await self._send(client_id)  # a lost one is resent on reconnect
            await asyncio.sleep(SEND_EVERY_S)

    async def read(self) -> None:
        """Frames until cancelled; a lost connection moves to the other node and resumes
        there."""
        while True:
            assert self.socket is not None
            try:
                frame = await self.socket.next(timeout=30)
            except ConnectionClosed:
                self.reconnects += 1
                self.node = 1 - self.node
                await self.connect()
                continue
            if frame["type"] == "message":
                self.received.append(frame["id"])
            elif frame["type"] == "ack":
                self.acked[frame["client_id"]] = frame["id"]
                with contextlib.suppress(ValueError):
                    self.unanswered.remove(frame["client_id"])
            elif frame["type"] in ("error", "resync"):
                raise AssertionError(f"{self.name} got {frame}")


async def test_a_node_killed_mid_send_loses_nothing_and_its_clients_see_no_gap(
    chat_server: StartServer, signed_up: SignUp, engine: AsyncEngine
) -> None:
    doomed: ChatServer = await chat_server(settings=SETTINGS)
    living = await chat_server(archiver=True, settings=SETTINGS)
    nodes: list[ChatNode] = [doomed, living]
    clients = [
        Client(f"c{i}", await signed_up(living, f"user{i}"), nodes, node=i % 2)
        for i in range(CLIENTS)
    ]
    for client in clients:
        await client.connect()
    reading = [asyncio.create_task(c.read()) for c in clients]
    sending = [asyncio.create_task(c.send_all()) for c in clients]
    try:
        await wait_until(
            lambda: sum(len(c.acked) for c in clients) >= KILL_AFTER_ACKS,
            what="sends under way on both nodes",
        )
        os.kill(doomed.process.pid, signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*sending), 60)
        await wait_until(
            lambda: all(len(c.acked) == SENDS for c in clients) or _failed(reading),
            60,
            what="every send answered",
        )
        last = max((i for c in clients for i in c.acked.values()), key=StreamId.parse)
        await wait_until(
            lambda: all(last in c.received for c in clients) or _failed(reading),
            60,
            what="every client received the room's last message",
        )
        for task in reading:
            if task.done():
                task.result()  # raises what a reader found wrong
    finally:
        for task in (*sending, *reading):
            task.cancel()
        await asyncio.gather(*sending, *reading, return_exceptions=True)
        for client in clients:
            if client.socket is not None:
                await client.socket.close()
    assert all(c.reconnects for c in clients if c.name in ("c0", "c2"))  # doomed's clients

    # Every acknowledged message is stored once, under the id its ack gave.
    acked = {cid: StreamId.parse(i) for c in clients for cid, i in c.acked.items()}
    assert len(acked) == CLIENTS * SENDS

    async def all_archived() -> list[tuple[StreamId, str, str]] | None:
        rows = await archived_rows(engine, "lobby")
        return rows if len(rows) >= len(acked) else None

    rows = await wait_until(all_archived, 60, what="every acked message archived")
    assert sorted((cid, i) for i, cid, _ in rows) == sorted(acked.items())
    stored = [i for i, _, _ in rows]
    assert len(stored) == len(set(stored))

    # Each client received the room's sequence from its first subscription on: every
    # stored id after its start, in order, each once, across the reconnect.
    for client in clients:
        assert client.start is not None
        start = StreamId.parse(client.start)
        expected = [str(i) for i in stored if i > start]
        assert client.received == expected, f"{client.name}: a gap, a repeat or a reorder"


def _failed(tasks: list[asyncio.Task[None]]) -> bool:
    return any(task.done() for task in tasks)
