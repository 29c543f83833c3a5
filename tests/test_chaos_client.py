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
from bench.chaos import reloads
from bench.chaos.checker import check
from bench.chaos.clients import Account, ChatClient, Pace
from bench.chaos.evidence import Evidence, Row
from bench.chaos.ledger import ClientLog, Ledger
from bench.chaos.reloads import ReloadFailed

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


def mid(n: int) -> str:
    return f"1700000000{n:03d}-0"


def message(n: int) -> dict[str, Any]:
    return {"type": "message", "room": ROOM, "id": mid(n), "body": "x"}


def resync() -> dict[str, Any]:
    return {"type": "resync", "room": ROOM}


def subscribed(n: int) -> dict[str, Any]:
    return {"type": "subscribed", "room": ROOM, "last_id": mid(n), "online": []}


def chat_client(
    urls: list[str], log: ClientLog | None = None, fetch: reloads.FetchPage | None = None
) -> ChatClient:
    """A client of `urls`; `fetch`: where its reloads get their pages (instead of HTTP)."""
    log = log or ClientLog("c0", 7)
    client = ChatClient(
        log,
        Account("c0", 7, "cookie"),
        [ROOM],
        urls,
        0,
        Ledger(),
        Pace(per_client_per_s=1.0),
        random.Random(0),
    )
    client.subscribed[ROOM] = asyncio.Event()
    if fetch is not None:
        client.reloads = {ROOM: reloads.RoomReload(ROOM, log.rooms[ROOM], fetch)}
    return client


def reload_tasks(client: ChatClient) -> list[asyncio.Task[None]]:
    return [r.task for r in client.reloads.values() if r.task is not None]


class History:
    """The nodes' history API (`GET /api/rooms/{room}/messages?after=`): pages of what it
    holds when each page is asked for, answered when the test opens the gate. `hidden`:
    messages SQL has but the API never gives (a real gap the checker must still see)."""

    def __init__(self, held: range, *, hidden: tuple[int, ...] = (), page: int = 3) -> None:
        self.held = list(held)
        self.hidden = hidden
        self.page = page
        self.gate = asyncio.Event()
        self.asked: list[str] = []  # each page's `after`
        self.in_flight = 0
        self.most_in_flight = 0
        self.failures = 0  # the next pages asked for fail, this many

    async def fetch(self, room: str, after: str) -> dict[str, Any]:
        assert room == ROOM
        self.asked.append(after)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.failures:
                self.failures -= 1
                raise ReloadFailed("503")
            newer = [mid(n) for n in self.held if n not in self.hidden and mid(n) > after]
            await self.gate.wait()  # what it holds was read: answered later
            return {
                "messages": [{"id": i} for i in newer[: self.page]],
                "has_more": len(newer) > self.page,
            }
        finally:
            self.in_flight -= 1


async def until(predicate: Any, what: str) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never: {what}")


def gaps(log: ClientLog, held: range) -> list[str]:
    rows = [Row(ROOM, mid(n), 7, f"c0-{n}", "x", pk=n) for n in held]
    ledger = Ledger(clients={log.name: log})
    verdict = check(ledger, Evidence(rows=rows), {})
    return [v.detail["id"] for v in verdict.violations if v.kind in ("gaps", "stalled")]


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
    client = chat_client([f"http://127.0.0.1:{silent.sockets[0].getsockname()[1]}"], log)
    frames = [
        subscribed(0),
        message(1),
        resync(),
        message(5),  # 2-4 were skipped by the node: only the reload can bring them
        message(6),
    ]
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
        assert client.reloads[ROOM].running
    finally:
        tasks = [*client.tasks, *reload_tasks(client)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        silent.close()
        for writer in held:
            writer.close()
            await writer.wait_closed()
        await silent.wait_closed()


@pytest.mark.parametrize(("hidden", "gap"), [((), []), ((7,), [mid(7)])])
async def test_resyncs_in_quick_succession_hold_one_reload_that_still_fetches_every_gap(
    hidden: tuple[int, ...], gap: list[str]
) -> None:
    """Three `resync`s of one room, the next two while the first reload's page is being
    answered: the web client starts the room afresh, it does not stack reloads, so one
    page is asked for at a time. But that page was read before the node skipped 5, 7
    and 8: the reload must ask again from the earliest cursor of the resyncs that came
    meanwhile (4), or those are missing with every resync marked done. The checker sees
    no gap; and a message the history API never gives (7, `hidden`) is still a gap."""
    history = History(range(1, 5), hidden=hidden)
    log = ClientLog("c0", 7)
    client = chat_client(["http://127.0.0.1:9"], log, history.fetch)
    first = [subscribed(0), message(1), resync(), message(4)]  # 2, 3 skipped live
    await client._read(BufferedFrames(first))  # type: ignore[arg-type]
    await until(lambda: history.asked == [mid(1)], "the first page asked for")
    history.held = list(range(1, 10))
    # 5 skipped, then 7 and 8.
    later = [resync(), message(6), resync(), message(9)]
    await client._read(BufferedFrames(later))  # type: ignore[arg-type]
    history.gate.set()
    view = log.rooms[ROOM]
    try:
        await until(lambda: all(r.done for r in view.resyncs), "every resync reloaded")
    finally:
        for task in reload_tasks(client):
            task.cancel()
    assert [r.cursor for r in view.resyncs] == [mid(1), mid(4), mid(6)]
    assert history.most_in_flight == 1
    assert gaps(log, range(1, 10)) == gap
    # Again from 4, the earliest cursor of the two resyncs that came meanwhile.
    assert history.asked == [mid(1), mid(4), mid(7) if not hidden else mid(8)]


async def test_a_resync_after_the_reload_finished_starts_the_next_and_failed_pages_are_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reloads, "RETRY_S", 0.0)
    history = History(range(1, 4))
    history.gate.set()
    log = ClientLog("c0", 7)
    client = chat_client(["http://127.0.0.1:9"], log, history.fetch)
    view = log.rooms[ROOM]
    await client._read(BufferedFrames([subscribed(0), message(1), resync(), message(3)]))  # type: ignore[arg-type]
    await until(lambda: view.resyncs[0].done, "the first reload done")
    assert not client.reloads[ROOM].running
    history.held, history.failures = list(range(1, 7)), 1
    await client._read(BufferedFrames([resync(), message(6)]))  # type: ignore[arg-type]
    await until(lambda: view.resyncs[1].done, "the second reload done")
    assert history.asked == [mid(1), mid(3), mid(3)]  # the failed page, asked again
    assert view.resyncs[1].last_error == "503"
    assert [r.reloaded for r in view.resyncs] == [2, 3]
    assert gaps(log, range(1, 7)) == []


async def test_a_reload_that_died_is_taken_up_from_its_cursor_by_the_next_resync() -> None:
    """A reload task that died on a surprise (a page of an unexpected shape) leaves its
    resync not done; the next resync's reload must start from the earlier cursor, or it
    marks that resync done without fetching what it missed."""
    history = History(range(1, 7))
    history.gate.set()
    broken = True

    async def fetch(room: str, after: str) -> dict[str, Any]:
        nonlocal broken
        if broken:
            broken = False
            raise KeyError("messages")
        return await history.fetch(room, after)

    log = ClientLog("c0", 7)
    client = chat_client(["http://127.0.0.1:9"], log, fetch)
    view = log.rooms[ROOM]
    await client._read(BufferedFrames([subscribed(0), message(1), resync(), message(4)]))  # type: ignore[arg-type]
    await until(lambda: not client.reloads[ROOM].running, "the first reload dead")
    assert not view.resyncs[0].done
    await client._read(BufferedFrames([resync(), message(6)]))  # type: ignore[arg-type]
    await until(lambda: all(r.done for r in view.resyncs), "both resyncs reloaded")
    assert gaps(log, range(1, 7)) == []
    assert history.asked[0] == mid(1)
