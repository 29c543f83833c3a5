"""The seam between a socket and the hub.

The hub talks to a `Transport`, never to Starlette or websockets: the web layer adapts its
socket to this protocol, and unit tests drive the hub with an in-memory fake.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

Key = TypeVar("Key")

# A run's frames are written in one go, past the socket's own flow control (which is
# checked once, before the write): a bound on what one socket may be handed at once.
RUN_MAX_CHARS = 64 * 1024


class TransportClosed(Exception):
    """The peer is gone (or the socket failed): nothing more can be read or sent."""


class SharedText(str):
    """A frame the hub sends to many connections alike (a room's live message).

    The first transport that sends it may keep its encoded form in `wire`; the others
    reuse it, so the frame is encoded once per message rather than once per connection.
    """

    wire: bytes | None = None


class SharedRun:
    """Consecutive live messages of a room that the hub sends to many connections alike:
    the ones one stream read brought. A connection that takes them all at once writes
    their frames to its socket in one write (`wire`, built once), not one write each:
    the socket write is most of a delivery's cost, and the busier the room, the more
    messages one read brings."""

    __slots__ = ("frames", "wire")

    def __init__(self, frames: list[SharedText]) -> None:
        self.frames = frames
        self.wire: bytes | None = None


def shared_runs(items: Iterable[tuple[Key, str]]) -> list[list[tuple[Key, SharedText]]]:
    """Consecutive frames, in order, in runs of at most RUN_MAX_CHARS (a longer frame alone)."""
    runs: list[list[tuple[Key, SharedText]]] = []
    chars = RUN_MAX_CHARS
    for key, text in items:
        if chars + len(text) > RUN_MAX_CHARS:
            runs.append([])
            chars = 0
        runs[-1].append((key, SharedText(text)))
        chars += len(text)
    return runs


class Transport(Protocol):
    async def receive(self) -> str | bytes:
        """The next frame from the client; raises TransportClosed when the peer is gone."""
        ...

    async def send(self, frame: str) -> None:
        """Send one text frame; raises TransportClosed when the peer is gone."""
        ...

    # Optional: `def send_now(self, frame: str) -> bool`, which sends at once when that
    # needs no wait and says whether it did. A connection with nothing queued uses it, so
    # a room's fan-out wakes no task per idle subscriber (see `Connection.offer`).
    # Optional with it: `def send_run_now(self, run: SharedRun) -> bool`, the same for
    # several frames at once, in order (see `Connection.offer_run`).

    async def close(self, code: int, reason: str) -> None:
        """Close with a code; never raises for an already closed socket."""
        ...
