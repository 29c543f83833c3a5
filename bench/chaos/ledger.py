"""What the clients did and saw: every send with its outcome, every frame received.

Pure records, no I/O: the clients write them, the checker reads them.

A send's outcome over all its attempts (a resend keeps the client_id):
- `acked`: some attempt got an `ack` with the message id;
- `unknown`: no ack, and some attempt's connection was lost before its answer (or the
  run ended first): the message may or may not be stored, at most once;
- `failed`: every attempt got an `error` frame: the message must not be stored.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

ACKED = "acked"
UNKNOWN = "unknown"
FAILED = "failed"


def id_key(message_id: str) -> tuple[int, int]:
    """A stream id as a sortable pair: `1700000000000-3` -> (1700000000000, 3)."""
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class Send:
    client: str
    user_id: int
    room: str
    client_id: str
    body: str
    first_sent_at: float  # wall clock, seconds
    attempts: int = 0
    lost_answers: int = 0  # attempts whose connection closed before the answer
    in_flight: bool = False
    id: str | None = None
    acked_at: float | None = None
    acked_epoch: int | None = None  # the connection that carried the acked attempt
    acked_attempt: int | None = None
    errors: list[str] = field(default_factory=list)
    # A change (issue 12): `edit` (body: the new body), `delete`, `react`, `unreact`
    # (emoji) of the message `target`; "send" for a message.
    kind: str = "send"
    target: str | None = None
    emoji: str | None = None

    @property
    def outcome(self) -> str:
        if self.id is not None:
            return ACKED
        if self.lost_answers or self.in_flight or not self.errors:
            return UNKNOWN
        return FAILED


@dataclass
class Resync:
    at: float
    cursor: str | None  # the client's last id in the room when the resync came
    reloaded: int = 0  # messages fetched over HTTP
    done: bool = False  # the reload reached the newest message
    last_error: str | None = None  # why its latest attempt failed (a status, an error)


@dataclass
class RoomView:
    """One client's view of one room over the whole run."""

    start: str | None = None  # `subscribed.last_id` of the first subscription: exclusive
    cursor: str | None = None  # the last id received (what `since` carries on reconnect)
    received: list[tuple[str, int]] = field(default_factory=list)  # (id, connection epoch)
    reloaded: set[str] = field(default_factory=set)  # ids fetched over HTTP after a resync
    resyncs: list[Resync] = field(default_factory=list)

    def advance(self, message_id: str) -> None:
        if self.cursor is None or id_key(message_id) > id_key(self.cursor):
            self.cursor = message_id


@dataclass
class ClientLog:
    name: str
    user_id: int
    rooms: dict[str, RoomView] = field(default_factory=dict)
    connections: int = 0
    disconnects: dict[str, int] = field(default_factory=dict)  # reason -> count
    refused: dict[str, int] = field(default_factory=dict)  # frame errors without client_id


@dataclass
class Ledger:
    sends: dict[tuple[str, str], Send] = field(default_factory=dict)  # (client, client_id)
    clients: dict[str, ClientLog] = field(default_factory=dict)
    slow_reader: dict[str, object] = field(default_factory=dict)
    # The latest acked sends, newest last: what the probe times into SQL.
    acks: deque[Send] = field(default_factory=lambda: deque(maxlen=64))

    def outcomes(self) -> dict[str, int]:
        counts = {ACKED: 0, UNKNOWN: 0, FAILED: 0}
        for send in self.sends.values():
            counts[send.outcome] += 1
        return counts
