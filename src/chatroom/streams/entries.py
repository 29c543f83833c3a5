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

_pair = tuple.__new__  # StreamId's own __new__ is a Python call around this


def entry_id(raw: bytes | str) -> StreamId:
    """An id Redis generated itself: a split is enough, and much cheaper than the
    validating `StreamId.parse` that ids from clients need."""
    if isinstance(raw, str):
        raw = raw.encode()
    ms, _, seq = raw.partition(b"-")
    return _pair(StreamId, (int(ms), int(seq)))


def fields_of(flat: list[bytes] | None) -> Fields:
    """An entry's fields from the flat list Redis sends (name, value, ...); none for an
    entry deleted while pending. Almost every entry has one field: no pairing loop."""
    if not flat:
        return {}
    if len(flat) == 2:
        return {flat[0]: flat[1]}
    pairs = iter(flat)
    return dict(zip(pairs, pairs, strict=True))


def as_sent(response: Any, **_options: Any) -> Any:
    """A response callback that keeps a reply as Redis sent it (see `stream_replies`)."""
    return response


def stream_replies(reply: Any) -> Iterable[tuple[bytes, list[Any]]]:
    """(stream key, raw entries) of an XREAD/XREADGROUP reply kept `as_sent`: a map under
    RESP3, a list of pairs under RESP2, nothing when no stream had entries."""
    if not reply:
        return ()
    return reply.items() if isinstance(reply, dict) else reply


def parse_entries(reply: Iterable[Any]) -> list[Entry]:
    """The entries of an XRANGE/XREAD/XREADGROUP reply for one stream. A pending entry
    whose data was deleted comes back without fields: its fields are then empty."""
    return [(entry_id(raw_id), fields or {}) for raw_id, fields in reply if raw_id is not None]
