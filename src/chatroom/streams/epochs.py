"""Where a room's stream stands, and its epochs: how a reader knows the stream went back.

Redis can lose the tail of a stream, or the whole stream: a restart from an older AOF,
the unsynced second of `appendfsync everysec` on a power cut, a failover to a replica that
was behind. The stream then comes back as it was a moment earlier (or not at all) while
SQL, the nodes and the clients remember messages after that moment. Each room therefore
has an epoch record (`redis_keys.room_epoch`) that says which stream this is:

- `kept`: the last id of the stream that survived when the epoch began;
- `archived`: SQL's newest message of the room then;
- `floor`: the stream's last id was raised to it (XSETID), so that a new message never
  takes an id that was given before the loss (the archiver would drop it as a replay).

Between `kept` and `floor` the stream holds nothing of the old epoch: what was archived is
read from SQL (`History` merges it), and an id in (`survived`, `floor`] (`survived` =
max(kept, archived)) is a lost message: a client whose `since` is one of them, or a node
whose fan-out stood there, gets `resync`.

An epoch begins when its record is missing (a new room, or Redis lost the room's keys:
the append script refuses with NOEPOCH until one is begun) or when a reader proves that
the stream went back (`begin` with the id it saw delivered: its evidence). Beginning is one
script, conditional on the epoch the caller saw, so nodes that find the same loss at once
begin one epoch, not two.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from chatroom import redis_keys
from chatroom.domain.stream_ids import ZERO, StreamId
from chatroom.outages import SQL_DOWN, Shortcut
from chatroom.streams.entries import entry_id

log = logging.getLogger(__name__)

# The newest archived message id of a room, by slug (SQL); 0-0 when there is none.
NewestArchived = Callable[[str], Awaitable[StreamId]]

# XINFO STREAM in Lua, as a table by field name (streams/snapshots.py uses it too).
LUA_STREAM_INFO = """
local function stream_info(key)
  local info = redis.call('XINFO', 'STREAM', key)
  local found = {}
  for i = 1, #info, 2 do found[info[i]] = info[i + 1] end
  return found
end
"""

# Ids compared in Lua: the ms part as a number (below 2^53), the seq part as text by
# length then bytes (seq parts reach 2^63, past a double's precision).
_LUA_IDS = (
    LUA_STREAM_INFO
    + """
local function split(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), string.sub(id, dash + 1)
end
local function less(a, b)
  local ams, aseq = split(a)
  local bms, bseq = split(b)
  if ams ~= bms then return ams < bms end
  if #aseq ~= #bseq then return #aseq < #bseq end
  return aseq < bseq
end
local function newest(a, b)
  if less(a, b) then return b end
  return a
end
-- Raise the stream's last id to `floor`, creating the stream (empty) if it is missing.
local function raise(key, floor, exists, last, tag)
  if not less(last, floor) then return end
  if exists then
    redis.call('XSETID', key, floor)
  else
    redis.call('XADD', key, 'MAXLEN', '0', floor, 'epoch', tag)
  end
end
"""
)

# KEYS: stream, epoch. ARGV: an id to count the stream's entries after ('': no count), the
# count's cap. Returns {exists, last generated id, entries added, length, first entry id,
# entries after the id (-1: not counted), epoch id, kept, archived, floor}.
_STANDING = """
local epoch = redis.call('HMGET', KEYS[2], 'id', 'kept', 'archived', 'floor')
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, '0-0', 0, 0, '0-0', -1, epoch[1], epoch[2], epoch[3], epoch[4]}
end
local info = stream_info(KEYS[1])
local after = -1
if ARGV[1] ~= '' then
  after = #redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
end
return {1, info['last-generated-id'], info['entries-added'], info['length'],
        info['recorded-first-entry-id'], after, epoch[1], epoch[2], epoch[3], epoch[4]}
"""

# KEYS: stream, epoch. ARGV: the epoch id the caller saw ('': none), the new epoch's id, the
# newest archived id, the caller's evidence (an id it saw in the stream; 0-0: none).
# Returns the epoch in force: the new one, or the one someone else began meanwhile.
_BEGIN = """
local seen = redis.call('HGET', KEYS[2], 'id')
if seen and seen ~= ARGV[1] then
  return redis.call('HMGET', KEYS[2], 'id', 'kept', 'archived', 'floor')
end
local exists = redis.call('EXISTS', KEYS[1]) == 1
local last = '0-0'
if exists then last = stream_info(KEYS[1])['last-generated-id'] end
local evidence = ARGV[4]
local kept = last
if less(evidence, last) and evidence ~= '0-0' then
  -- New entries came after the loss: what survived ends at the last one up to the evidence.
  local below = redis.call('XREVRANGE', KEYS[1], evidence, '-', 'COUNT', 1)
  kept = '0-0'
  if #below > 0 then kept = below[1][1] end
end
local floor = newest(newest(last, ARGV[3]), evidence)
raise(KEYS[1], floor, exists, last, ARGV[2])
redis.call('HSET', KEYS[2], 'id', ARGV[2], 'kept', kept, 'archived', ARGV[3], 'floor', floor)
return {ARGV[2], kept, ARGV[3], floor}
"""

# KEYS: stream, epoch. ARGV: the epoch id, an id a reader saw delivered in it. Raises the
# epoch's floor (and the stream's last id) to that id if it is higher. Returns 1 if raised.
_RAISE = """
if redis.call('HGET', KEYS[2], 'id') ~= ARGV[1] then return 0 end
local floor = redis.call('HGET', KEYS[2], 'floor')
if not less(floor, ARGV[2]) then return 0 end
local exists = redis.call('EXISTS', KEYS[1]) == 1
local last = '0-0'
if exists then last = stream_info(KEYS[1])['last-generated-id'] end
raise(KEYS[1], ARGV[2], exists, last, ARGV[1])
redis.call('HSET', KEYS[2], 'floor', ARGV[2])
return 1
"""


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


@dataclass(frozen=True, slots=True)
class Epoch:
    id: str
    kept: StreamId
    archived: StreamId
    floor: StreamId

    @classmethod
    def from_reply(cls, reply: list[Any]) -> Epoch | None:
        if not reply or reply[0] is None:
            return None
        kept, archived, floor = (entry_id(_text(r)) for r in reply[1:4])
        return cls(_text(reply[0]), kept, archived, floor)

    @property
    def survived(self) -> StreamId:
        """Up to here every message of the room is still in the stream or in SQL."""
        return max(self.kept, self.archived)

    def lost(self, message_id: StreamId) -> bool:
        """Whether the id may be a message Redis lost when this epoch began."""
        return self.survived < message_id <= self.floor

    def archived_only(self) -> tuple[StreamId, StreamId] | None:
        """The ids (exclusive, exclusive) where SQL holds messages this stream never will."""
        if self.kept >= self.floor:
            return None
        return self.kept, self.floor.next()


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a room's stream stands at one instant."""

    exists: bool
    last_generated: StreamId  # 0-0 when the stream is missing
    entries_added: int  # every entry ever added (trimmed ones too)
    length: int
    first_id: StreamId  # the first entry's id (meaningful when length > 0)
    entries_after: int  # entries after the id asked about; -1: not counted
    epoch: Epoch | None

    @property
    def trimmed(self) -> int:
        """How many entries were removed from the front (Chatroom never XDELs)."""
        return self.entries_added - self.length

    @classmethod
    def from_reply(cls, reply: list[Any]) -> Standing:
        exists, last, added, length, first, after = reply[:6]
        return cls(
            exists=bool(exists),
            last_generated=entry_id(_text(last)),
            entries_added=int(added),
            length=int(length),
            first_id=entry_id(_text(first)),
            entries_after=int(after),
            epoch=Epoch.from_reply(list(reply[6:10])),
        )


COUNT_CAP = 200
SQL_WAIT_S = 5.0  # beginning an epoch waits this long for SQL's newest id at most


class StreamEpochs:
    """Reads where room streams stand, and begins epochs (see the module's docstring).

    `newest_archived` reads SQL; without it (tests of Redis alone) SQL is taken as empty.
    """

    def __init__(self, redis: Redis, newest_archived: NewestArchived | None = None) -> None:
        self._redis = redis
        self._newest_archived = newest_archived
        self._sql = Shortcut(SQL_WAIT_S)  # a failed wait: the next rooms begin without one
        self._standing = redis.register_script(_LUA_IDS + _STANDING)
        self._begin = redis.register_script(_LUA_IDS + _BEGIN)
        self._raise = redis.register_script(_LUA_IDS + _RAISE)

    async def standing(self, slug: str, *, count_after: StreamId | None = None) -> Standing:
        return (await self.standings([(slug, count_after)]))[0]

    async def standings(self, rooms: Iterable[tuple[str, StreamId | None]]) -> list[Standing]:
        """Where each room's stream stands, in one round trip; with an id, how many
        entries the stream holds after it (up to COUNT_CAP)."""
        rooms = list(rooms)
        if not rooms:
            return []
        replies = await self._standings(rooms)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            # Redis restarted (or SCRIPT FLUSH): load the script and ask again.
            await self._redis.script_load(self._standing.script)
            replies = await self._standings(rooms)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [Standing.from_reply(reply) for reply in replies]

    async def _standings(self, rooms: list[tuple[str, StreamId | None]]) -> list[Any]:
        """EVALSHA directly: redis-py's Script in a pipeline asks SCRIPT EXISTS first, a
        second round trip on every read the fan-out checks."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for slug, count_after in rooms:
                after = "" if count_after is None else str(count_after)
                pipe.evalsha(self._standing.sha, 2, *_keys(slug), after, COUNT_CAP)
            return await pipe.execute(raise_on_error=False)

    async def begin(self, slug: str, *, seen: Epoch | None, evidence: StreamId = ZERO) -> Epoch:
        """Begin a new epoch unless someone began one after `seen`; the epoch in force.

        With SQL down (or slow) the floor is what the stream and the evidence know: sends
        are not refused for it (new ids come from the clock, which passed the archived
        ones), and the readers that call this are not held up."""
        archived = ZERO
        if self._newest_archived is not None and self._sql.open:
            try:
                async with asyncio.timeout(SQL_WAIT_S):
                    archived = await self._newest_archived(slug)
            except SQL_DOWN as exc:
                self._sql.failed()
                log.warning("room %s: SQL's newest message unknown (%s)", slug, exc)
        args = [seen.id if seen else "", secrets.token_hex(8), str(archived), str(evidence)]
        reply = await self._begin(keys=_keys(slug), args=args)
        epoch = Epoch.from_reply(list(reply))
        assert epoch is not None  # the script always returns one
        return epoch

    async def begin_missing(self, slugs: Iterable[str]) -> None:
        """Begin an epoch in each room that has none (the append script refused)."""
        for slug in slugs:
            await self.begin(slug, seen=None)

    async def raise_floor(self, slug: str, epoch: Epoch, seen_id: StreamId) -> bool:
        """Make sure no new message of the room gets an id at or below `seen_id`, which a
        reader delivered in an earlier epoch."""
        raised = await self._raise(keys=_keys(slug), args=[epoch.id, str(seen_id)])
        return bool(raised)


def _keys(slug: str) -> list[str]:
    return [redis_keys.room_stream(slug), redis_keys.room_epoch(slug)]
