"""Reads of a room stream for the history merge.

One script returns a range of entries together with the stream's first entry, last
generated id and epoch at that same instant: what the merge needs to know which part of
the history the stream held, and so which part only SQL can hold (below the first entry,
and what an earlier epoch archived before Redis lost it: streams/epochs.py). One single
read answers what a subscribe with `since` asks: whether the stream holds that id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from chatroom import redis_keys
from chatroom.domain.stream_ids import StreamId
from chatroom.streams.entries import Entry, entry_id, fields_of, parse_entries
from chatroom.streams.epochs import LUA_STREAM_INFO, Epoch


@dataclass(frozen=True, slots=True)
class StreamSnapshot:
    entries: list[Entry]  # in the order asked for (ascending, or descending for `newest`)
    exhausted: bool  # fewer entries than asked: the range reached the stream's end
    first_id: StreamId | None  # the stream's oldest entry; None when empty or missing
    horizon: StreamId  # nothing newer than this existed at the snapshot
    epoch: Epoch | None = None  # None: the room has no epoch record (yet, or any more)
    # The stream's first entry above the epoch's `kept` (None: none, or not asked).
    first_new: StreamId | None = None

    @property
    def archived_only(self) -> tuple[StreamId, StreamId] | None:
        """Ids (exclusive bounds) the stream lost in a Redis loss: archived ones are only
        in SQL. Up to the first entry the new stream holds, not only up to the epoch's
        floor: an archiver that read a message before the loss may commit it after the
        epoch began, above the floor."""
        lost = self.epoch.archived_only() if self.epoch else None
        if lost is None:
            return None
        new_stream = self.first_new or self.horizon.next()
        return lost[0], max(lost[1], new_stream)


def _time_ms(reply: Any) -> int:
    seconds, micros = reply
    return int(seconds) * 1000 + int(micros) // 1000


# KEYS: stream, epoch. ARGV: 'after' or 'before', the bound ('': the stream's end), count.
# Returns {0, time, epoch} when the stream does not exist, else {1, time, epoch, last
# generated id, first entry's id (nil: empty), entries}. A script, not MULTI/EXEC: as
# atomic, on a cluster too (TIME runs on the room's master), and Redis at maxmemory
# refuses every command queued in a MULTI, reads included, but runs a script's reads:
# history must be readable while sends are refused for want of memory.
_SNAPSHOT = (
    LUA_STREAM_INFO
    + """
local epoch = redis.call('HMGET', KEYS[2], 'id', 'kept', 'archived', 'floor')
local now = redis.call('TIME')
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, now, epoch} end
local info = stream_info(KEYS[1])
local first = info['first-entry'] and info['first-entry'][1]
local entries
if ARGV[1] == 'after' then
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[2], '+', 'COUNT', ARGV[3])
elseif ARGV[2] == '' then
  entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[3])
else
  entries = redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[2], '-', 'COUNT', ARGV[3])
end
return {1, now, epoch, info['last-generated-id'], first, entries}
"""
)


class StreamSnapshots:
    """Snapshots of the room streams for the history merge (see the module docstring)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._snapshot = redis.register_script(_SNAPSHOT)

    async def read_range(
        self, room: str, *, after: StreamId | None, before: StreamId | None, count: int
    ) -> StreamSnapshot:
        """Entries after `after` ascending, or (with `after=None`) before `before`
        descending."""
        key = redis_keys.room_stream(room)
        args: list[str | int]
        if after is not None:
            args = ["after", str(after), count]
        else:
            args = ["before", "" if before is None else str(before), count]
        reply: Any = await self._snapshot(keys=[key, redis_keys.room_epoch(room)], args=args)
        exists, now, epoch_reply = reply[:3]
        epoch = Epoch.from_reply(epoch_reply)
        if not exists:  # the stream never existed (or was lost)
            # Any entry appended later gets an id at or after this moment.
            horizon = StreamId(_time_ms(now), 0).previous()
            return StreamSnapshot([], True, None, horizon, epoch)
        last, first, raw = reply[3:6]
        parsed = [(entry_id(raw_id), fields_of(flat)) for raw_id, flat in raw]
        first_new = None
        if epoch is not None and epoch.archived_only() is not None:
            # Not in the script (it needs the epoch): an entry trimmed meanwhile makes
            # the range only wider, and the merge reads each id once.
            above = await self._redis.xrange(key, min=f"({epoch.kept}", max="+", count=1)
            first_new = parse_entries(above)[0][0] if above else None
        return StreamSnapshot(
            entries=parsed,
            exhausted=len(parsed) < count,
            first_id=None if first is None else entry_id(first),
            horizon=entry_id(last),
            epoch=epoch,
            first_new=first_new,
        )


async def entry(redis: Redis, room: str, entry_id: StreamId) -> dict[bytes, bytes] | None:
    """The fields of the room's stream entry with this id, if the stream holds it now."""
    key = redis_keys.room_stream(room)
    reply = await redis.xrange(key, min=str(entry_id), max=str(entry_id), count=1)
    found = parse_entries(reply) if reply else []
    return found[0][1] if found else None


async def holds(redis: Redis, room: str, entry_id: StreamId) -> bool:
    """Whether the room's stream holds an entry with this id now."""
    key = redis_keys.room_stream(room)
    return bool(await redis.xrange(key, min=str(entry_id), max=str(entry_id), count=1))
