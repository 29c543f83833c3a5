"""The campaign client's answer to `resync`: reload the room's history over HTTP.

At most one reload per room at a time, as the web client holds one view of a room
(client/src/stores/messages.ts `resync` starts the room afresh, it does not stack
loads): a `resync` that comes while the room's reload runs joins it instead of starting
another. Repeated resyncs piling up concurrent reloads of one room were load the web
client never makes.

What the checker needs stays true (checker.py `_check_gaps`): the reload fetches every
message after the earliest cursor it has not yet reloaded, and a `resync` is `done` only
when a page asked for after it came back with nothing more. So a `resync` that arrives
while a page is being asked for makes the reload ask again from its cursor: that page
may have been read before what the node skipped was in history.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bench.chaos.ledger import Resync, RoomView, id_key

RETRY_S = 1.0  # as a browser would, ask again after a failed page


class ReloadFailed(Exception):
    """A page could not be had (a transport error, a status): the reason, for the record."""


# (room, after) -> a history page: {"messages": [{"id": ...}, ...], "has_more": bool}.
FetchPage = Callable[[str, str], Awaitable[dict[str, Any]]]


def _earliest(a: str | None, b: str) -> str:
    return b if a is None or id_key(b) < id_key(a) else a


class RoomReload:
    """One room's reload, started by its first `resync` and joined by the next ones."""

    def __init__(self, room: str, view: RoomView, fetch: FetchPage) -> None:
        self.room = room
        self.view = view
        self._fetch = fetch
        self.task: asyncio.Task[None] | None = None
        self._serving: list[Resync] = []  # the resyncs this reload answers, none done yet
        # The earliest cursor of the resyncs that came while a page was asked for.
        self._again_from: str | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def resync(self, resync: Resync) -> None:
        """Answer `resync` (its cursor: the last id seen before the frame): join the
        reload that runs, or start one."""
        after = self._after(resync)
        self._serving.append(resync)
        if self.running:
            self._again_from = _earliest(self._again_from, after)
            return
        # From the earliest resync not yet done (one left by a reload that died, too).
        for waiting in self._serving:
            after = _earliest(after, self._after(waiting))
        self.task = asyncio.create_task(self._run(after), name=f"reload {self.room}")

    def _after(self, resync: Resync) -> str:
        return resync.cursor or self.view.start or "0-0"

    async def _run(self, after: str) -> None:
        while True:
            self._again_from = None  # a resync from here on: the page below may miss
            try:
                page = await self._fetch(self.room, after)
            except ReloadFailed as exc:
                for resync in self._serving:
                    resync.last_error = str(exc)
                await asyncio.sleep(RETRY_S)
                after = _earliest(self._again_from, after)
                continue
            for message in page["messages"]:
                self.view.reloaded.add(message["id"])
                self.view.advance(message["id"])
                for resync in self._serving:
                    resync.reloaded += 1
                after = message["id"]
            if self._again_from is not None:
                after = _earliest(self._again_from, after)
            elif not page["has_more"]:
                for resync in self._serving:
                    resync.done = True
                self._serving = []
                return
