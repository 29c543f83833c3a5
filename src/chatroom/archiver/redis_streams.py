"""The archiver's Redis side: the consumer group, reads, claims, acks and safe trims.

Thin wrappers over the stream commands; every decision is the caller's. Entries come
back as `Delivery`, an entry deleted while pending as one with no fields.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError, ResponseError

from chatroom import redis_keys
from chatroom.archiver.batching import Delivery
from chatroom.domain.events import InvalidEvent, MessageEvent, decode_event
from chatroom.domain.stream_ids import StreamId
from chatroom.streams.entries import as_sent, entry_id, fields_of, parse_entries, stream_replies

GROUP = redis_keys.ARCHIVER_GROUP

# A consumer's heartbeat key lives this long in each room it reads; the archiver renews it
# every third of that. Without one, another archiver may remove the consumer once idle.
HEARTBEAT_TTL_S = 15.0
# On a cluster, how long each slot group's read waits when no group had anything new.
CLUSTER_BLOCK_MS = 100

# Trim below what is archived and acknowledged, keeping the newest `hot` entries:
# the bound is the oldest pending entry of the group, or the first entry the group has
# not delivered yet; below both, every entry was acknowledged (after its SQL commit).
# KEYS: stream. ARGV: group, hot window. Returns the number of entries removed.
_SAFE_TRIM = """
local key, group, hot = KEYS[1], ARGV[1], tonumber(ARGV[2])
if redis.call('EXISTS', key) == 0 then return 0 end
local function parse(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local function less(a, b)
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  return ams < bms or (ams == bms and aseq < bseq)
end
local delivered = nil
local groups = redis.call('XINFO', 'GROUPS', key)
for _, info in ipairs(groups) do
  local name, last = nil, nil
  for i = 1, #info, 2 do
    if info[i] == 'name' then name = info[i + 1] end
    if info[i] == 'last-delivered-id' then last = info[i + 1] end
  end
  if name == group then delivered = last end
end
if delivered == nil then return 0 end
-- The first entry not yet delivered (or none): everything before it was delivered.
local bound = nil
local undelivered = redis.call('XRANGE', key, '(' .. delivered, '+', 'COUNT', 1)
if #undelivered > 0 then bound = undelivered[1][1] end
local pending = redis.call('XPENDING', key, group)
if pending[2] and (bound == nil or less(pending[2], bound)) then bound = pending[2] end
local keep = nil
if hot > 0 then
  local newest = redis.call('XREVRANGE', key, '+', '-', 'COUNT', hot)
  if #newest < hot then return 0 end
  keep = newest[#newest][1]
end
local minid = bound
if keep ~= nil and (minid == nil or less(keep, minid)) then minid = keep end
if minid == nil then
  -- Everything delivered and acknowledged, and no hot window: trim all but nothing new.
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if #last == 0 then return 0 end
  local id = last[1][1]
  local dash = string.find(id, '-', 1, true)
  local seq = tonumber(string.sub(id, dash + 1)) + 1
  minid = string.sub(id, 1, dash - 1) .. '-' .. string.format('%d', seq)
end
return redis.call('XTRIM', key, 'MINID', minid)
"""


# Remove a consumer that is gone, checking and deleting in one step: a consumer that
# reads between a separate check and XGROUP DELCONSUMER would be deleted with the entries
# it just read (delivered, no longer pending: a safe trim could then drop them unarchived).
# Gone: no heartbeat key, nothing pending, idle at least the limit.
# KEYS: stream, the consumer's heartbeat key. ARGV: group, consumer, idle limit (ms).
# Returns 1 when the consumer was removed.
_REMOVE_IF_GONE = """
local key, alive = KEYS[1], KEYS[2]
local group, name, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('EXISTS', alive) == 1 then return 0 end
for _, info in ipairs(redis.call('XINFO', 'CONSUMERS', key, group)) do
  local this, pending, idle = false, nil, nil
  for i = 1, #info, 2 do
    if info[i] == 'name' then this = info[i + 1] == name end
    if info[i] == 'pending' then pending = info[i + 1] end
    if info[i] == 'idle' then idle = info[i + 1] end
  end
  if this then
    if pending ~= 0 or idle < limit then return 0 end
    redis.call('XGROUP', 'DELCONSUMER', key, group, name)
    return 1
  end
end
return 0
"""


# Acknowledge entries one by one and return the positions (1-based) of those that were
# no longer pending: another consumer claimed and acknowledged them first. An entry counts
# as archived by exactly one archiver, the one that acknowledged it; the reply is almost
# always empty, so it costs nothing to read. The ids come as one argument, separated by
# spaces: packed by the client as a thousand arguments, they cost the archiver 2 us each
# (a sixth of its CPU per row), as one, a fifth of that.
# KEYS: stream. ARGV: group, ids. XACK is allowed at maxmemory.
_ACK_EACH = """
local taken, position = {}, 0
for id in string.gmatch(ARGV[2], '%S+') do
  position = position + 1
  if redis.call('XACK', KEYS[1], ARGV[1], id) == 0 then taken[#taken + 1] = position end
end
return taken
"""


def _entries(room: str, raw: Iterable[Any], deliveries: int = 1) -> list[Delivery]:
    """Deliveries of a reply redis-py parsed (fields as a dict)."""
    return [
        Delivery(room, entry_id(raw_id), fields or {}, deliveries)
        for raw_id, fields in raw
        if raw_id is not None
    ]


def _read_entries(room: str, raw: Iterable[Any]) -> list[Delivery]:
    """Deliveries of an XREADGROUP reply kept as Redis sent it (fields as a flat list)."""
    return [
        Delivery(room, entry_id(raw_id), fields_of(flat))
        for raw_id, flat in raw
        if raw_id is not None
    ]


@dataclass(frozen=True, slots=True)
class Claimed:
    entries: list[Delivery]
    deleted: list[StreamId]  # pending entries whose data was gone: now out of the PEL
    next_start: str  # "0-0": the scan of this stream's PEL is complete


class GroupStreams:
    """One archiver's view of the consumer group over the room streams."""

    def __init__(self, redis: Redis, blocking: Redis, consumer: str) -> None:
        self._redis = redis
        self._blocking = blocking  # no socket timeout: for XREADGROUP with BLOCK
        # XREADGROUP replies stay as Redis sent them and become deliveries here at once:
        # redis-py's parse made a dict and a tuple per entry first (with the deliveries,
        # a tenth of the archiver's CPU per row). These clients are the archiver's own;
        # no other part of Chatroom reads a consumer group.
        for client in (redis, blocking):
            client.set_response_callback("XREADGROUP", as_sent)
        self.consumer = consumer
        self.heartbeat_ttl_s = HEARTBEAT_TTL_S
        self._trim = redis.register_script(_SAFE_TRIM)
        self._ack_each = redis.register_script(_ACK_EACH)
        self._remove_if_gone = redis.register_script(_REMOVE_IF_GONE)

    async def messages_held(self, wanted: list[tuple[str, StreamId]]) -> set[tuple[str, StreamId]]:
        """Which of these (room, id) the room streams hold now as messages (not as a
        change, nor an entry that does not decode)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for room, entry_id in wanted:
                pipe.xrange(redis_keys.room_stream(room), min=str(entry_id), max=str(entry_id))
            replies = await pipe.execute()
        held: set[tuple[str, StreamId]] = set()
        for (room, entry_id), reply in zip(wanted, replies, strict=True):
            for _, fields in parse_entries(reply or []):
                try:
                    if isinstance(decode_event(room, fields), MessageEvent):
                        held.add((room, entry_id))
                except InvalidEvent:
                    pass
        return held

    async def rooms(self) -> set[str]:
        members: Any = await self._redis.smembers(redis_keys.ROOMS_WITH_STREAMS)
        return {slug.decode() if isinstance(slug, bytes) else str(slug) for slug in members}

    async def server_time_ms(self) -> int:
        """Redis's clock (TIME), which the stream ids are made of, in milliseconds."""
        seconds, micros = await self._redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def ensure_group(self, room: str) -> bool | None:
        """Create the group from the stream's first entry (id 0), with the stream if need
        be; True when this call created it, False when it was there. None: Redis is full
        (maxmemory refuses XGROUP CREATE, even of a group that exists) and the group does
        not exist yet: try again later."""
        key = redis_keys.room_stream(room)
        try:
            await self._redis.xgroup_create(key, GROUP, id="0", mkstream=True)
        except OutOfMemoryError:
            return False if await self._group_exists(key) else None
        except ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                return False
            raise
        return True

    async def _group_exists(self, key: str) -> bool:
        try:
            groups: Any = await self._redis.xinfo_groups(key)
        except ResponseError:  # no such stream
            return False
        return any(g["name"] in (GROUP, GROUP.encode()) for g in groups)

    async def read_new(
        self, rooms: Iterable[str], *, count: int, block_ms: int | None
    ) -> list[Delivery]:
        """New entries of every room (delivered to us now), waiting up to `block_ms`.

        On a cluster, one XREADGROUP per slot group (its rooms share a slot), all at
        once: first without waiting, then, when none had anything, each waiting at most
        `CLUSTER_BLOCK_MS` (a blocked read is never cancelled: what it took is ours)."""
        rooms = list(rooms)
        if not rooms:
            return []
        if not redis_keys.cluster_layout():
            return await self._read_group(rooms, count=count, block_ms=block_ms)
        groups: dict[int | None, list[str]] = {}
        for room in rooms:
            groups.setdefault(redis_keys.slot_group(room), []).append(room)
        found = await self._read_groups(groups, count=count, block_ms=None)
        if found or block_ms is None:
            return found
        block = min(block_ms, CLUSTER_BLOCK_MS)
        return await self._read_groups(groups, count=count, block_ms=block)

    async def _read_groups(
        self, groups: dict[int | None, list[str]], *, count: int, block_ms: int | None
    ) -> list[Delivery]:
        replies = await asyncio.gather(
            *(self._read_group(rooms, count=count, block_ms=block_ms) for rooms in groups.values())
        )
        return [delivery for reply in replies for delivery in reply]

    async def _read_group(
        self, rooms: list[str], *, count: int, block_ms: int | None
    ) -> list[Delivery]:
        streams: Any = {redis_keys.room_stream(room): ">" for room in rooms}
        client = self._blocking if block_ms is not None else self._redis
        reply: Any = await client.xreadgroup(
            GROUP, self.consumer, streams, count=count, block=block_ms
        )
        found: list[Delivery] = []
        for key, raw in stream_replies(reply):
            found += _read_entries(redis_keys.room_of_stream(key.decode()), raw)
        return found

    async def read_own_pending(self, room: str, *, after: StreamId, count: int) -> list[Delivery]:
        """Entries delivered to this consumer and not acknowledged, after `after`, with
        their delivery counts (this read counts as one more delivery)."""
        key = redis_keys.room_stream(room)
        reply: Any = await self._redis.xreadgroup(
            GROUP, self.consumer, {key: str(after)}, count=count
        )
        entries = [e for _, raw in stream_replies(reply) for e in _read_entries(room, raw)]
        if not entries:
            return []
        counts = await self._deliveries(key, entries[0].id, entries[-1].id, len(entries))
        return [Delivery(e.room, e.id, e.fields, counts.get(e.id, e.deliveries)) for e in entries]

    async def _deliveries(
        self, key: str, first: StreamId, last: StreamId, count: int
    ) -> dict[StreamId, int]:
        rows: Any = await self._redis.xpending_range(
            key, GROUP, min=str(first), max=str(last), count=count, consumername=self.consumer
        )
        return {StreamId.parse(r["message_id"]): int(r["times_delivered"]) for r in rows}

    async def claim_stale(self, room: str, *, min_idle_ms: int, start: str, count: int) -> Claimed:
        """Take over entries another consumer left pending for `min_idle_ms` (it died)."""
        key = redis_keys.room_stream(room)
        reply: Any = await self._redis.xautoclaim(
            key, GROUP, self.consumer, min_idle_ms, start_id=start, count=count
        )
        next_start = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        entries = _entries(room, reply[1])
        deleted = [StreamId.parse(i) for i in (reply[2] if len(reply) > 2 else [])]
        if entries:
            counts = await self._deliveries(key, entries[0].id, entries[-1].id, len(entries))
            entries = [
                Delivery(e.room, e.id, e.fields, counts.get(e.id, e.deliveries)) for e in entries
            ]
        return Claimed(entries, deleted, next_start)

    async def ack(self, acks: Mapping[str, list[StreamId]]) -> set[tuple[str, StreamId]]:
        """Acknowledge archived entries, every room in one round trip; returns the
        (room, id) this call did NOT acknowledge: another consumer had, before it."""
        rooms = [(room, ids) for room, ids in acks.items() if ids]
        async with self._redis.pipeline(transaction=False) as pipe:
            for room, ids in rooms:
                keys = [redis_keys.room_stream(room)]
                await self._ack_each(keys=keys, args=[GROUP, " ".join(map(str, ids))], client=pipe)
            replies = await pipe.execute()
        return {
            (room, ids[int(position) - 1])
            for (room, ids), taken in zip(rooms, replies, strict=True)
            for position in taken
        }

    async def report_progress(
        self,
        archived: Mapping[tuple[str, int], int],
        missing: Mapping[str, int],
        suspects: Mapping[str, int],
    ) -> None:
        """Add rows archived per (room, second) for the rows/s figure of `chatroom status`,
        pending entries found deleted, and suspects tried alone, per room."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for (room, second), rows in archived.items():
                rate = redis_keys.archiver_rate(room)
                pipe.hincrby(rate, str(second), rows)
                pipe.expire(rate, 120)
            for room, gone in missing.items():
                pipe.incrby(redis_keys.archiver_missing(room), gone)
            for room, tried in suspects.items():
                pipe.incrby(redis_keys.archiver_suspects(room), tried)
            await pipe.execute()

    async def count_attempt(self, entry: Delivery) -> None:
        """Raise a pending entry's delivery count by one before trying it alone, so that
        one that kills the archiver counts each try (XCLAIM to ourselves, RETRYCOUNT)."""
        await self._redis.xclaim(
            redis_keys.room_stream(entry.room),
            GROUP,
            self.consumer,
            0,
            [str(entry.id)],
            retrycount=entry.deliveries + 1,
            justid=True,
        )

    async def prune_rates(self, room: str, older_than_s: int) -> None:
        rate = redis_keys.archiver_rate(room)
        fields: Any = await self._redis.hkeys(rate)
        old = [f for f in fields if int(f) < older_than_s]
        if old:
            await self._redis.hdel(rate, *old)

    async def trim(self, room: str, hot_window: int) -> int:
        return int(await self._trim(keys=[redis_keys.room_stream(room)], args=[GROUP, hot_window]))

    async def heartbeat(self, rooms: Iterable[str]) -> None:
        """Say this consumer is alive for `heartbeat_ttl_s`, in each room it reads (the key
        lives in the room's slot, next to the stream the removal script checks). Redis at
        maxmemory refuses SET, not PEXPIRE: the keys that exist are renewed meanwhile."""
        ttl_ms = max(1, int(self.heartbeat_ttl_s * 1000))
        keys = [redis_keys.archiver_heartbeat(room, self.consumer) for room in rooms]
        if not keys:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(key, "1", px=ttl_ms)
                await pipe.execute()
        except OutOfMemoryError:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.pexpire(key, ttl_ms)
                await pipe.execute()

    async def forget_heartbeat(self, rooms: Iterable[str]) -> None:
        keys = [redis_keys.archiver_heartbeat(room, self.consumer) for room in rooms]
        if keys:
            await self._redis.delete(*keys)

    async def remove_gone_consumers(self, room: str, *, idle_ms: int) -> list[str]:
        """Remove consumers of the group that are dead (no heartbeat, idle) and hold
        nothing pending: removing one with pending entries would orphan them."""
        consumers: Any = await self._redis.xinfo_consumers(redis_keys.room_stream(room), GROUP)
        removed = []
        for info in consumers:
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            # A cheap first look; the script decides, atomically.
            if name == self.consumer or int(info["pending"]) or int(info["idle"]) < idle_ms:
                continue
            if await self.remove_consumer_if_gone(room, name, idle_ms=idle_ms):
                removed.append(name)
        return removed

    async def remove_consumer_if_gone(self, room: str, name: str, *, idle_ms: int) -> bool:
        """Remove consumer `name` if, at this instant, it has no heartbeat in this room,
        nothing pending, and has been idle `idle_ms`: checked and done in one script."""
        keys = [redis_keys.room_stream(room), redis_keys.archiver_heartbeat(room, name)]
        return bool(await self._remove_if_gone(keys=keys, args=[GROUP, name, idle_ms]))

    async def remove_self_if_idle(self, room: str) -> bool:
        """On a clean stop: leave the group when nothing of ours is pending."""
        key = redis_keys.room_stream(room)
        consumers: Any = await self._redis.xinfo_consumers(key, GROUP)
        for info in consumers:
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if name == self.consumer and not int(info["pending"]):
                await self._redis.xgroup_delconsumer(key, GROUP, name)
                return True
        return False
