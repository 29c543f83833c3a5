"""A room stream's entries as Redis returns them, and the one place that parses them.

The history reads, the hub's fan-out and the archiver all read room streams; each turns
the reply into entries here. An entry is a plain tuple: the fan-out makes one per message
on every node, and a tuple is the cheapest thing to make.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chatroom.domain.stream_ids import StreamId

Fields = dict[bytes, bytes]
Entry = tuple[StreamId, Fields]


def entry_id(raw: bytes | str) -> StreamId:
    """An id Redis generated itself: a split is enough, and much cheaper than the
    validating `StreamId.parse` that ids from clients need."""
    if isinstance(raw, str):
        raw = raw.encode()
    ms, _, seq = raw.partition(b"-")
    return StreamId(int(ms), int(seq))


def parse_entries(reply: Iterable[Any]) -> list[Entry]:
    """The entries of an XRANGE/XREAD/XREADGROUP reply for one stream. A pending entry
    whose data was deleted comes back without fields: its fields are then empty."""
    return [(entry_id(raw_id), fields or {}) for raw_id, fields in reply if raw_id is not None]
