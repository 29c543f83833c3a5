"""Reads of a room stream for the history merge.

One MULTI/EXEC returns a range of entries together with the stream's first entry, last
generated id and epoch at that same instant: what the merge needs to know which part of
the history the stream held, and so which part only SQL can hold (below the first entry,
and what an earlier epoch archived before Redis lost it: streams/epochs.py). One single
read answers what a subscribe with `since` asks: whether the stream holds that id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from chatroom import redis_keys
from chatroom.domain.stream_ids import StreamId
from chatroom.redis_cluster import is_cluster, master_of
from chatroom.streams.entries import Entry, parse_entries
from chatroom.streams.epochs import Epoch


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


async def read_range(
    redis: Redis, room: str, *, after: StreamId | None, before: StreamId | None, count: int
) -> StreamSnapshot:
    """Entries after `after` ascending, or (with `after=None`) before `before` descending."""
    key = redis_keys.room_stream(room)
    cluster = is_cluster(redis)
    # A cluster's MULTI takes keyed commands of one slot only: the room's master's clock
    # is read just before it instead (earlier, so still a lower bound for new ids).
    clock = None
    if cluster:
        clock = await redis.execute_command(  # type: ignore[no-untyped-call]
            "TIME", target_nodes=await master_of(redis, key)
        )
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xinfo_stream(key)
        if after is not None:
            pipe.xrange(key, min=f"({after}", max="+", count=count)
        else:
            pipe.xrevrange(key, max=f"({before}" if before else "+", min="-", count=count)
        if not cluster:
            pipe.time()
        pipe.hmget(redis_keys.room_epoch(room), ["id", "kept", "archived", "floor"])
        replies = await pipe.execute(raise_on_error=False)
    if cluster:
        replies.insert(2, clock)
    info, entries, now, epoch_reply = replies
    for reply in (entries, now, epoch_reply):
        if isinstance(reply, Exception):
            raise reply
    epoch = Epoch.from_reply(epoch_reply)
    if isinstance(info, ResponseError):  # no such key: the stream never existed (or was lost)
        # Any entry appended later gets an id at or after this moment.
        horizon = StreamId(_time_ms(now), 0).previous()
        return StreamSnapshot([], True, None, horizon, epoch)
    if isinstance(info, Exception):
        raise info
    first = info.get("first-entry")
    parsed = parse_entries(entries)
    first_new = None
    if epoch is not None and epoch.archived_only() is not None:
        # Not in the MULTI (it needs the epoch): an entry trimmed meanwhile makes the
        # range only wider, and the merge reads each id once.
        above = await redis.xrange(key, min=f"({epoch.kept}", max="+", count=1)
        first_new = parse_entries(above)[0][0] if above else None
    return StreamSnapshot(
        entries=parsed,
        exhausted=len(parsed) < count,
        first_id=StreamId.parse(first[0]) if first else None,
        horizon=StreamId.parse(info["last-generated-id"]),
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
