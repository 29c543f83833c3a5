"""The cross-node fan-out: each app node reads the room streams themselves.

One task per node runs XREAD BLOCK over the streams of the rooms that have subscribers
on this node, each from the last id it delivered. Order is therefore the stream's own,
and any number of nodes needs nothing else: a message appended through node 1 is read
from its stream by node 2 like any other. When the set of rooms changes while the read
is blocked, the node adds an entry to its own small wake-up stream, which is part of
every read, so the change takes effect at once.

A read that outlasts its BLOCK by `READ_HANG_S` is on a hung connection (half-open after
a failover, a NAT timeout, a paused VM): it is dropped, and the next read, on a fresh
connection, starts again from the last id delivered per room, so nothing is lost and
nothing is delivered twice.

No reader skips ids (invariant 10). A node that stalled (a pause, a partition, a CPU
starved by a burst) may find that the archiver trimmed entries after its cursor: XREAD
then returns only what is left. So before it delivers a read, the node asks where each
room's stream stands, in one round trip for the rooms of the read (`StreamEpochs`), and
compares the entries trimmed so far with the entries it has seen (`RoomCursor.seen`, the
count of entries up to its cursor; hub/room_cursor.py): more trimmed than seen means
entries after the cursor are gone (`missing_range`), and the node delivers them from SQL
first, in order. If SQL cannot give them, the room's subscribers on this node get
`resync`, never a silent gap. The same
answer says when Redis lost the stream's tail (its epoch changed, or it holds fewer
entries or a lower last id than this node already saw): the subscribers that saw lost
messages get `resync`. After a failed read, and after a quiet BLOCK, every watched room
is checked too: a stream trimmed to nothing returns no entries to notice a gap by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chatroom import redis_keys
from chatroom.domain.events import RoomItem
from chatroom.domain.stream_ids import StreamId
from chatroom.hub.room_cursor import (
    RoomCursor,
    counted_upto,
    missing_range,
    seen_after,
    went_back,
)
from chatroom.outages import SQL_DOWN, Outage, Shortcut, first_line
from chatroom.redis_client import READ_HANG_S
from chatroom.redis_cluster import drop_idle_connections, is_cluster
from chatroom.streams.entries import Entry, parse_entries
from chatroom.streams.epochs import Epoch, Standing, StreamEpochs

log = logging.getLogger(__name__)

READ_COUNT = 1000
BLOCK_MS = 10_000
RETRY_S = 0.5
WAKEUP_TTL_S = 3600
FILL_PAGE = 500  # missed messages read from SQL at a time
FILL_TIMEOUT_S = 5.0  # a missed range SQL cannot give within this long: resync instead
# After a fill failed, the rooms that need one next resync at once for this long: each
# room waiting out the same SQL outage in turn would stall every room's fan-out here.
SQL_QUIET_S = 5.0


class SqlFills:
    """A node's fills from SQL, one at a time whichever stream reader asks: after one
    failed, the next skip SQL for `SQL_QUIET_S` rather than each wait out the outage."""

    def __init__(self) -> None:
        self.shortcut = Shortcut(SQL_QUIET_S)
        self.turn = asyncio.Lock()


class RoomFeed(Protocol):
    """Where the bus hands a room's messages (the hub)."""

    def entries(self, slug: str, entries: list[Entry]) -> None:
        """New stream entries of the room, in id order."""

    def missed(self, slug: str, messages: list[RoomItem]) -> None:
        """Messages (and changes) trimmed from the stream before this node read them,
        in id order."""

    def lost(self, slug: str) -> None:
        """Continuity could not be kept: the room's subscribers here must reload history."""

    async def archived(
        self, slug: str, after: StreamId, before: StreamId, limit: int
    ) -> list[RoomItem]:
        """Up to `limit` archived messages and changes of the room, after < id < before."""


class StreamBus:
    """Reads the watched rooms' streams in id order and hands them to a `RoomFeed`."""

    def __init__(
        self,
        redis: Redis,
        blocking_redis: Redis,
        node_id: str,
        feed: RoomFeed,
        epochs: StreamEpochs,
        *,
        block_ms: int = BLOCK_MS,
        hang_s: float = READ_HANG_S,
        group: int | None = None,
        fills: SqlFills | None = None,
    ):
        self._redis = redis
        self._blocking = blocking_redis  # XREAD BLOCK holds its connection: a client of its own
        self._block_ms = block_ms
        self._read_limit_s = block_ms / 1000 + hang_s
        self._link = Outage(
            "Redis (reading the room streams)",
            "reading again on a fresh connection; nothing is skipped",
            log,
        )
        # The reader of one group of rooms (hub/bus_groups.py), or of all.
        self._wakeup_key = redis_keys.node_wakeup(node_id, group)
        self._name = "stream-bus" if group is None else f"stream-bus-{group}"
        self._wakeup_id = StreamId(0, 0)
        self._feed = feed
        self._epochs = epochs
        self._cursors: dict[str, RoomCursor] = {}  # by slug
        self._fills = fills or SqlFills()
        self._check_all = False  # every watched room is checked before the next read
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._wakeup_id = StreamId.parse(await self._wake())
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._wakeup_key)

    async def watch(self, slug: str, position: Standing) -> None:
        """Deliver the room's entries after `position` (where its stream stood, read by
        the caller) from now on; no-op if watched."""
        if slug in self._cursors:
            return
        epoch = position.epoch.id if position.epoch else None
        self._cursors[slug] = RoomCursor(position.last_generated, position.entries_added, epoch)
        await self._nudge()

    def unwatch(self, slug: str) -> None:
        # No wake-up needed: a result for an unwatched room is dropped.
        self._cursors.pop(slug, None)

    async def _wake(self) -> str:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self._wakeup_key, {"w": "1"}, maxlen=10, approximate=False)
            pipe.expire(self._wakeup_key, WAKEUP_TTL_S)
            entry_id, _ = await pipe.execute()
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def _nudge(self) -> None:
        self._changed.set()
        try:
            await self._wake()
        except (RedisError, OSError) as exc:
            # The read loop picks the room up at its next read, within BLOCK_MS.
            log.warning("could not wake the stream reader: %s", exc)

    async def _drop_connection(self) -> None:
        """Close the hung read's connection (back in the pool, idle) so that the next read
        opens a new one; the pub/sub connection, in use, is not touched."""
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(self._read_limit_s):
                if is_cluster(self._blocking):
                    await drop_idle_connections(self._blocking)
                else:
                    await self._blocking.connection_pool.disconnect(inuse_connections=False)

    async def _run(self) -> None:
        while True:
            if not self._cursors:
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                if self._check_all:
                    await self._deliver({slug: [] for slug in self._cursors})
                    self._check_all = False
                reply = await self._read()
                if reply is None:  # BLOCK ran out: a room trimmed to nothing says nothing
                    self._check_all = True
                    continue
                await self._deliver(reply)
            except TimeoutError:
                self._link.failed(f"no answer within {self._read_limit_s:g} s")
                self._after_outage()
                await self._drop_connection()
                # At once: the cursors still hold the last ids delivered.
            except (RedisError, OSError) as exc:
                self._link.failed(first_line(exc))
                self._after_outage()
                await asyncio.sleep(RETRY_S)
            except Exception:  # a bug must not end every room's fan-out on this node
                log.exception("the stream reader failed; reading again")
                self._check_all = True
                await asyncio.sleep(RETRY_S)

    def _after_outage(self) -> None:
        """A read failed: Redis may have restarted without its last second of writes, and
        with them messages an archiver had already put in SQL that this node had not read
        yet. The stream's counts cannot show that (it looks as if they never were), so
        each room checks SQL once below the next entry it delivers (`RoomCursor.hole`)."""
        self._check_all = True
        for cursor in self._cursors.values():
            cursor.after_outage()

    async def _read(self) -> dict[str, list[Entry]] | None:
        """One XREAD of every watched room: the new entries by room (None: none came)."""
        streams: dict[str, str] = {
            redis_keys.room_stream(slug): str(cursor.last) for slug, cursor in self._cursors.items()
        }
        streams[self._wakeup_key] = str(self._wakeup_id)
        reply: Any = await asyncio.wait_for(
            self._blocking.xread(
                streams,  # type: ignore[arg-type]
                count=READ_COUNT,
                block=self._block_ms,
            ),
            self._read_limit_s,
        )
        self._link.recovered()
        if not reply:
            return None
        by_room: dict[str, list[Entry]] = {}
        for raw_key, raw_entries in reply:
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            entries = parse_entries(raw_entries)
            if key == self._wakeup_key:
                if entries:
                    self._wakeup_id = entries[-1][0]
                continue
            if entries:
                by_room[redis_keys.room_of_stream(key)] = entries
        return by_room

    async def _deliver(self, by_room: dict[str, list[Entry]]) -> None:
        """Check where the rooms' streams stand (one round trip), then deliver each room:
        what it missed first, then its new entries. A failed check delivers nothing: the
        next read returns the same entries."""
        rooms = [(slug, self._cursors[slug]) for slug in by_room if slug in self._cursors]
        if not rooms:
            return
        # How many entries follow the last one read (or the cursor) says how many the
        # stream ever had up to it: an unknown count of entries seen is learnt from it,
        # and a known one checked against it (`went_back`). Few follow: a cheap count.
        counted = [_last(by_room[slug], cursor.last) for slug, cursor in rooms]
        standings = await self._epochs.standings(
            (slug, after) for (slug, _), after in zip(rooms, counted, strict=True)
        )
        for (slug, cursor), standing, after in zip(rooms, standings, counted, strict=True):
            if self._cursors.get(slug) is cursor:  # not unwatched meanwhile
                await self._advance(slug, cursor, by_room[slug], standing, after)

    async def _advance(
        self,
        slug: str,
        cursor: RoomCursor,
        entries: list[Entry],
        standing: Standing,
        counted: StreamId,
    ) -> None:
        epoch = standing.epoch
        # A new epoch someone else began accounts for a loss already (`_follow`).
        if epoch is None or (
            epoch.id == cursor.epoch and went_back(cursor, standing, entries, counted)
        ):
            epoch = await self._epochs.begin(slug, seen=epoch, evidence=cursor.last)
        if epoch.id != cursor.epoch:
            await self._follow(slug, cursor, epoch)
        if self._cursors.get(slug) is not cursor:
            return
        # Watched anew meanwhile from a later id: only what is after that is news.
        entries = [entry for entry in entries if entry[0] > cursor.last]
        hole = cursor.hole
        if hole is not None and entries and entries[-1][0] > hole:
            # The read crosses the range Redis lost: what the old stream kept first, then
            # what SQL holds up to the first entry of the new one (whatever the epoch's
            # floor says: an archiver may have committed it after the epoch began).
            below = [entry for entry in entries if entry[0] <= hole]
            if below:
                await self._deliver_read(slug, cursor, below, standing, epoch, None)
                if self._cursors.get(slug) is not cursor:
                    return
            cursor.hole = None
            cursor.seen = None
            first_new = entries[len(below)][0]
            if first_new > cursor.last.next():
                await self._fill(slug, cursor, first_new)
                if self._cursors.get(slug) is not cursor:
                    return
            entries = [entry for entry in entries if entry[0] > cursor.last]
        await self._deliver_read(slug, cursor, entries, standing, epoch, counted)

    async def _deliver_read(
        self,
        slug: str,
        cursor: RoomCursor,
        entries: list[Entry],
        standing: Standing,
        epoch: Epoch,
        counted: StreamId | None,
    ) -> None:
        """Deliver entries read after the cursor, and first what the stream no longer
        holds before them. `counted`: the id the standing counted entries after (None: no
        count applies to these entries)."""
        upper, filled = missing_range(cursor, standing, epoch, entries)
        if filled:
            await self._fill(slug, cursor, upper)
            if self._cursors.get(slug) is not cursor:
                return
            entries = [entry for entry in entries if entry[0] > cursor.last]
        unknown = StreamId(0, 0) if counted is None else counted
        if entries:
            cursor.seen = seen_after(cursor, standing, entries, filled, unknown)
            cursor.last = entries[-1][0]
            try:
                self._feed.entries(slug, entries)
            except Exception:  # one room's bad batch must not stop every room's fan-out
                log.exception("fan-out of room %s failed", slug)
        elif filled:  # all that was below the stream's first entry came from SQL
            cursor.seen = standing.trimmed if standing.length else standing.entries_added
        elif cursor.seen is None and counted is not None:
            cursor.seen = counted_upto(standing, counted, cursor.last)

    async def _follow(self, slug: str, cursor: RoomCursor, epoch: Epoch) -> None:
        """The room's stream began a new epoch: this node's subscribers who saw messages
        Redis then lost are told to reload, and no new id may fall below what they saw."""
        if cursor.last > epoch.survived:
            log.warning("room %s: Redis lost messages this node delivered; resync", slug)
            self._feed.lost(slug)
            if cursor.last > epoch.floor:
                await self._epochs.raise_floor(slug, epoch, cursor.last)
        if cursor.epoch is not None or epoch.floor > epoch.kept:
            cursor.seen = None  # counts of the earlier stream no longer apply
        if epoch.floor > epoch.kept:
            cursor.hole = epoch.kept
        cursor.epoch = epoch.id

    async def _fill(self, slug: str, cursor: RoomCursor, upper: StreamId) -> None:
        """Deliver from SQL what the stream no longer holds between the cursor and `upper`
        (exclusive); if SQL cannot, the room's subscribers here get `resync`."""
        after = cursor.last
        sql = self._fills.shortcut
        try:
            async with self._fills.turn:
                if not sql.open:
                    raise TimeoutError("SQL failed a moment ago")
                async with asyncio.timeout(FILL_TIMEOUT_S):
                    while True:
                        missed = await self._feed.archived(slug, after, upper, FILL_PAGE)
                        if self._cursors.get(slug) is not cursor:
                            return
                        if missed:
                            self._feed.missed(slug, missed)
                            after = missed[-1].id
                        if len(missed) < FILL_PAGE:
                            break
        except SQL_DOWN as exc:
            if sql.open:
                sql.failed()
            log.warning(
                "room %s: cannot load what this node missed (%s); resync",
                slug,
                first_line(exc) if str(exc) else f"no answer within {FILL_TIMEOUT_S:g} s",
            )
            self._feed.lost(slug)
        cursor.last = max(cursor.last, upper.previous())


def _last(entries: list[Entry], cursor: StreamId) -> StreamId:
    return entries[-1][0] if entries else cursor
