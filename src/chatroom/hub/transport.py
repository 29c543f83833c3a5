"""The seam between a socket and the hub.

The hub talks to a `Transport`, never to Starlette or websockets: the web layer adapts its
socket to this protocol, and unit tests drive the hub with an in-memory fake.
"""

from __future__ import annotations

from typing import Protocol


class TransportClosed(Exception):
    """The peer is gone (or the socket failed): nothing more can be read or sent."""


class SharedText(str):
    """A frame the hub sends to many connections alike (a room's live message).

    The first transport that sends it may keep its encoded form in `wire`; the others
    reuse it, so the frame is encoded once per message rather than once per connection.
    """

    wire: bytes | None = None


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

    async def close(self, code: int, reason: str) -> None:
        """Close with a code; never raises for an already closed socket."""
        ...
