"""Redis stream ids as numbers: `1655188547271-10` sorts after `1655188547271-9`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import NamedTuple

from chatroom.domain.rules import SQL_ID_MAX

_ID = re.compile(r"(\d{1,19})-(\d{1,19})")


class InvalidStreamId(ValueError):
    pass


class StreamId(NamedTuple):
    """A named pair rather than a frozen dataclass: every entry read makes one, and sets,
    dicts and sorts of ids run on the tuple's C hash, equality and order (a dataclass's
    are Python methods; its frozen init three times the cost of this one)."""

    ms: int
    seq: int

    @classmethod
    def parse(cls, text: str | bytes) -> StreamId:
        if isinstance(text, bytes):
            # Fast path for what Redis replies (every append's id): ASCII digits, a dash,
            # ASCII digits, as the pattern below takes them, without the regex.
            ms_part, dash, seq_part = text.partition(b"-")
            digits = ms_part.isdigit() and seq_part.isdigit()
            if dash and digits and len(ms_part) <= 19 and len(seq_part) <= 19:
                ms, seq = int(ms_part), int(seq_part)
                if ms <= SQL_ID_MAX and seq <= SQL_ID_MAX:
                    return cls(ms, seq)
            text = text.decode("ascii", "replace")
        match = _ID.fullmatch(text)
        if match is None:
            raise InvalidStreamId(f"not a stream id: {text[:40]!r}")
        ms, seq = int(match[1]), int(match[2])
        # Redis allows 64-bit unsigned parts; SQL stores them as signed BIGINT, so larger
        # ones are refused here (no id Redis generates from a clock comes near them).
        if ms > SQL_ID_MAX or seq > SQL_ID_MAX:
            raise InvalidStreamId(f"stream id out of range: {text[:40]!r}")
        return cls(ms, seq)

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.ms / 1000, tz=UTC)

    def next(self) -> StreamId:
        """The smallest id after this one."""
        if self.seq == SQL_ID_MAX:
            return StreamId(self.ms + 1, 0)
        return StreamId(self.ms, self.seq + 1)

    def previous(self) -> StreamId:
        """The largest id before this one (0-0 has none: it stays 0-0)."""
        if self.seq > 0:
            return StreamId(self.ms, self.seq - 1)
        if self.ms == 0:
            return self
        return StreamId(self.ms - 1, SQL_ID_MAX)


ZERO = StreamId(0, 0)


def iso_millis(ms: int) -> str:
    """`2026-01-01T12:00:00.123Z`: UTC with milliseconds, as the contract writes times."""
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"
