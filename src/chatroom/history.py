"""The gapless history read: a page of a room's messages merged from stream and SQL.

Why it is gapless while the archiver moves entries: the archiver trims an entry from
the stream only after the SQL transaction holding it committed. Each step first takes
an atomic snapshot of the stream (a range plus the stream's first entry, last generated
id and epoch), then reads SQL where the stream cannot answer: strictly below the
snapshot's first entry, and in the range its epoch says Redis lost (streams/epochs.py:
after a loss, messages archived before it sit above the recreated stream's first entry).
An entry older than that first entry was trimmed before the snapshot, so it was committed
before the SQL read starts: it is there. Entries newer than the snapshot's last id are
never taken from SQL, so a page never skips an entry that was still on its way. Stream
and SQL are merged by id, each id once.

A subscribe with `since` asks three more questions, answered here too: where the room's
stream stands (`position`), whether a message id exists (`contains`), and the id of the
newest message when the stream is gone (`newest_id`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from chatroom import history_state
from chatroom.domain.changes import ChangeEntry
from chatroom.domain.events import InvalidEvent, Message, MessageEvent, RoomItem, decode_event
from chatroom.domain.stream_ids import ZERO, StreamId
from chatroom.store.history_pages import ArchivedPages
from chatroom.streams.entries import Entry
from chatroom.streams.epochs import Standing, StreamEpochs
from chatroom.streams.snapshots import StreamSnapshot, StreamSnapshots, entry, holds

log = logging.getLogger(__name__)

PAGE_MAX = 200
T = TypeVar("T", Message, RoomItem)


@dataclass(frozen=True, slots=True)
class Page:
    messages: list[Message]  # oldest first
    has_more: bool  # older (latest or before=) or newer (after=) messages exist
    # With `changes=True` (a replay): the changes among them, by stream id; the page's
    # limit counts both.
    changes: list[ChangeEntry] = field(default_factory=list)

    def items(self) -> list[RoomItem]:
        """Messages and changes in stream order."""
        if not self.changes:
            return list(self.messages)
        return sorted([*self.messages, *self.changes], key=lambda item: item.id)


@dataclass(frozen=True, slots=True)
class AroundPage:
    """The messages around one message (a permalink): it, and those on either side."""

    messages: list[Message]  # oldest first; holds the message asked for, if it exists
    found: bool  # the message asked for is in the room
    has_older: bool
    has_newer: bool


# Ids between two exclusive bounds (a lower bound of None: from the very first).
Span = tuple[StreamId | None, StreamId]


def _messages(slug: str, entries: list[Entry]) -> list[Message]:
    """Decoded messages of stream entries; undecodable ones are the archiver's to
    dead-letter, never shown (nor are changes: they are applied to their message)."""
    return [item for item in _items(slug, entries) if isinstance(item, Message)]


def _items(slug: str, entries: list[Entry]) -> list[RoomItem]:
    """Decoded messages and changes of stream entries."""
    found: list[RoomItem] = []
    for entry_id, fields in entries:
        try:
            event = decode_event(slug, fields)
        except InvalidEvent:
            continue
        if isinstance(event, MessageEvent):
            found.append(
                Message(entry_id, slug, event.author, event.body, event.client_id, event.reply_to)
            )
        else:
            found.append(ChangeEntry(entry_id, event))
    return found


def _merged(*groups: Sequence[T], newest_first: bool = False) -> list[T]:
    """The items of every group in id order, each id once."""
    by_id: dict[StreamId, T] = {}
    for group in groups:
        for message in group:
            by_id.setdefault(message.id, message)
    return sorted(by_id.values(), key=lambda m: m.id, reverse=newest_first)


def _archived_after(snap: StreamSnapshot, bound: StreamId) -> list[Span]:
    """Where, after `bound`, only SQL can hold messages of this snapshot's room."""
    spans: list[Span] = []
    first = snap.first_id
    if first is None or first > bound.next():  # below the stream's first entry
        spans.append((bound, first or snap.horizon.next()))
    lost = snap.archived_only
    if lost is not None and first is not None and lost[1] > first:  # not all below it
        lower = max(bound, lost[0])
        if lower.next() < lost[1]:
            spans.append((lower, lost[1]))
    return spans


def _archived_before(snap: StreamSnapshot, bound: StreamId | None) -> list[Span]:
    """Where, before `bound` (None: the latest), only SQL can hold messages."""
    spans: list[Span] = []
    upper = snap.horizon.next() if bound is None else min(bound, snap.horizon.next())
    first = snap.first_id
    if snap.exhausted:  # the stream holds nothing more below `bound`: the rest is in SQL
        spans.append((None, upper if first is None else min(upper, first)))
    lost = snap.archived_only
    if lost is not None and first is not None and lost[1] > first:  # not all below it
        top = min(upper, lost[1])
        if lost[0].next() < top:
            spans.append((lost[0], top))
    return spans


class History:
    def __init__(self, redis: Redis, archive: ArchivedPages) -> None:
        self._redis = redis
        self._snapshots = StreamSnapshots(redis)
        self._archive = archive
        self.epochs = StreamEpochs(redis, archive.newest_id)

    async def page(
        self,
        room_id: int,
        slug: str,
        *,
        before: StreamId | None = None,
        after: StreamId | None = None,
        limit: int = 50,
        changes: bool = False,
    ) -> Page:
        """A page of messages; with `changes` (after= only: a replay), the changes to
        messages too, in stream order with them."""
        if before is not None and after is not None:
            raise ValueError("before and after exclude each other")
        if after is not None:
            return await self._newer(room_id, slug, after, limit, changes=changes)
        return await self._older(room_id, slug, before, limit)

    async def around(self, room_id: int, slug: str, target: StreamId, *, limit: int) -> AroundPage:
        """Up to `limit` messages around `target`: it and about half before it, the rest
        after it (more on one side where the other runs out); two gapless pages that meet
        at `target`."""
        older = await self._older(room_id, slug, target.next(), limit)  # up to and with it
        newer = await self._newer(room_id, slug, target, limit, changes=False)
        found = bool(older.messages) and older.messages[-1].id == target
        newer_shown = min(len(newer.messages), limit - min(len(older.messages), (limit + 1) // 2))
        older_shown = min(len(older.messages), limit - newer_shown)
        return AroundPage(
            older.messages[len(older.messages) - older_shown :] + newer.messages[:newer_shown],
            found=found,
            has_older=older.has_more or older_shown < len(older.messages),
            has_newer=newer.has_more or newer_shown < len(newer.messages),
        )

    async def _older(self, room_id: int, slug: str, before: StreamId | None, limit: int) -> Page:
        found: list[Message] = []  # newest first
        bound = before
        while True:
            want = limit + 1 - len(found)
            snap = await self._snapshot(slug, after=None, before=bound, count=want)
            # This step answers for the ids from `covered` up to `bound` (None: all of them).
            covered = None if snap.exhausted else snap.entries[-1][0]
            archived: list[Message] = []
            for lower, upper in _archived_before(snap, bound):
                rows = await self._archive.before(room_id, slug, upper, want, lower=lower)
                archived += rows
                if len(rows) == want:  # SQL may hold more below these
                    covered = rows[-1].id if covered is None else max(covered, rows[-1].id)
            step = _merged(_messages(slug, snap.entries), archived, newest_first=True)
            found += [m for m in step if covered is None or m.id >= covered]
            if len(found) > limit or covered is None:
                break
            bound = covered
        return Page(list(reversed(found[:limit])), has_more=len(found) > limit)

    async def _newer(
        self, room_id: int, slug: str, after: StreamId, limit: int, *, changes: bool
    ) -> Page:
        found: list[RoomItem] = []  # oldest first
        bound = after
        while len(found) <= limit:
            want = limit + 1 - len(found)
            snap = await self._snapshot(slug, after=bound, before=None, count=want)
            # This step answers for the ids after `bound` up to `covered` (None: all).
            covered = None if snap.exhausted else snap.entries[-1][0]
            archived: list[RoomItem] = []
            for lower, upper in _archived_after(snap, bound):
                rows: list[RoomItem] = []
                if changes:
                    rows += await self._archive.items_between(
                        room_id, slug, lower or ZERO, upper, want
                    )
                else:
                    rows += await self._archive.between(room_id, slug, lower or ZERO, upper, want)
                archived += rows
                if len(rows) == want:  # SQL may hold more above these
                    covered = rows[-1].id if covered is None else min(covered, rows[-1].id)
            streamed = _items(slug, snap.entries)
            if not changes:
                streamed = [item for item in streamed if isinstance(item, Message)]
            step = _merged(streamed, archived)
            found += [m for m in step if covered is None or m.id <= covered]
            if covered is None:
                break
            bound = covered
        found = found[: limit + 1]
        page = found[:limit]
        return Page(
            [m for m in page if isinstance(m, Message)],
            has_more=len(found) > limit,
            changes=[c for c in page if isinstance(c, ChangeEntry)],
        )

    async def _snapshot(
        self, slug: str, *, after: StreamId | None, before: StreamId | None, count: int
    ) -> StreamSnapshot:
        """A snapshot of the stream, in an epoch: a room without one (new, or its keys
        lost with Redis) begins one first, so that the snapshot says what SQL alone holds."""
        snap = await self._snapshots.read_range(slug, after=after, before=before, count=count)
        if snap.epoch is None:
            try:
                await self.epochs.begin(slug, seen=None)
            except ResponseError as exc:  # Redis full (OOM): read as the stream stands
                log.warning("room %s: cannot begin its epoch (%s)", slug, exc)
                return snap
            snap = await self._snapshots.read_range(slug, after=after, before=before, count=count)
        return snap

    async def position(self, slug: str) -> Standing:
        """Where the room's stream stands: its last generated id (the entry may be trimmed
        by now), how many entries it ever had, and its epoch."""
        return await self.epochs.standing(slug)

    async def stream_last_id(self, slug: str) -> StreamId | None:
        """The last id the room's stream ever gave (its entry may be trimmed by now), or
        None when the room has no stream: never written to, or lost with Redis."""
        standing = await self.position(slug)
        return standing.last_generated if standing.exists else None

    async def archived_between(
        self, room_id: int, slug: str, after: StreamId, before: StreamId, limit: int
    ) -> list[RoomItem]:
        """Up to `limit` archived messages and changes with after < id < before, oldest
        first."""
        return await self._archive.items_between(room_id, slug, after, before, limit)

    async def current(
        self, room_id: int, slug: str, page: list[Message], viewer: int | None
    ) -> list[Message]:
        """The page's messages as their changes left them (history_state.py)."""
        return await history_state.current(
            self._redis, self._archive.engine, room_id, slug, page, viewer
        )

    async def find_message(self, room_id: int, slug: str, message_id: StreamId) -> Message | None:
        """The room's message with this id (not a change: only messages are targets), from
        the stream, else from SQL. In that order: an entry the stream no longer holds was
        trimmed after its transaction committed, so SQL, read after, has it."""
        fields = await entry(self._redis, slug, message_id)
        if fields is not None:
            try:
                event = decode_event(slug, fields)
            except InvalidEvent:
                return None
            if not isinstance(event, MessageEvent):
                return None
            return Message(
                message_id, slug, event.author, event.body, event.client_id, event.reply_to
            )
        found = await self._archive.between(
            room_id, slug, message_id.previous(), message_id.next(), 1
        )
        return found[0] if found else None

    async def contains(self, room_id: int, slug: str, message_id: StreamId) -> bool:
        """Whether the room has a message (or a change: a client's cursor moves over them
        too) with this id, in the stream or in SQL."""
        if await holds(self._redis, slug, message_id):
            return True
        found = await self._archive.items_between(
            room_id, slug, message_id.previous(), message_id.next(), 1
        )
        return bool(found)

    async def newest_id(self, room_id: int, slug: str) -> StreamId:
        """The id of the room's newest message, or 0-0 for a room without messages."""
        page = await self.page(room_id, slug, limit=1)
        return page.messages[-1].id if page.messages else ZERO
