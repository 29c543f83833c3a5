"""The gapless history read: a page of a room's messages merged from stream and SQL.

Why it is gapless while the archiver moves entries: the archiver trims an entry from
the stream only after the SQL transaction holding it committed. Each step first takes
an atomic snapshot of the stream (a range plus the stream's first entry and last
generated id), then reads SQL strictly below the snapshot's first entry. An entry older
than that first entry was trimmed before the snapshot, so it was committed before the
SQL read starts: it is there. Entries newer than the snapshot's last id are never
taken from SQL, so a page never skips an entry that was still on its way.

A subscribe with `since` asks three more questions, answered here too: where the room's
stream stands (`stream_last_id`), whether a message id exists (`contains`), and the id
of the newest message when the stream is gone (`newest_id`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.asyncio import Redis

from chatroom.domain.events import InvalidEvent, Message, decode_event
from chatroom.domain.stream_ids import ZERO, StreamId
from chatroom.store.history_pages import ArchivedPages
from chatroom.streams.entries import Entry
from chatroom.streams.snapshots import holds, last_generated_id, read_range

log = logging.getLogger(__name__)

PAGE_MAX = 200


@dataclass(frozen=True, slots=True)
class Page:
    messages: list[Message]  # oldest first
    has_more: bool  # older (latest or before=) or newer (after=) messages exist


def _messages(slug: str, entries: list[Entry]) -> list[Message]:
    """Decoded messages of stream entries; undecodable ones are the archiver's to
    dead-letter, never shown."""
    found = []
    for entry_id, fields in entries:
        try:
            event = decode_event(slug, fields)
        except InvalidEvent:
            continue
        found.append(Message(entry_id, slug, event.author, event.body, event.client_id))
    return found


class History:
    def __init__(self, redis: Redis, archive: ArchivedPages) -> None:
        self._redis = redis
        self._archive = archive

    async def page(
        self,
        room_id: int,
        slug: str,
        *,
        before: StreamId | None = None,
        after: StreamId | None = None,
        limit: int = 50,
    ) -> Page:
        if before is not None and after is not None:
            raise ValueError("before and after exclude each other")
        if after is not None:
            return await self._newer(room_id, slug, after, limit)
        return await self._older(room_id, slug, before, limit)

    async def _older(self, room_id: int, slug: str, before: StreamId | None, limit: int) -> Page:
        found: list[Message] = []  # newest first
        bound = before
        while True:
            want = limit + 1 - len(found)
            snap = await read_range(self._redis, slug, after=None, before=bound, count=want)
            found += _messages(slug, snap.entries)
            if len(found) > limit:
                break
            if not snap.exhausted:  # undecodable entries left the page short: read on
                bound = snap.entries[-1][0]
                continue
            # Below `bound` the stream held nothing more: the rest is in SQL.
            candidates = [snap.horizon.next(), bound, snap.first_id]
            upper = min(c for c in candidates if c is not None)
            found += await self._archive.before(room_id, slug, upper, limit + 1 - len(found))
            break
        return Page(list(reversed(found[:limit])), has_more=len(found) > limit)

    async def _newer(self, room_id: int, slug: str, after: StreamId, limit: int) -> Page:
        found: list[Message] = []  # oldest first
        bound = after
        while len(found) <= limit:
            want = limit + 1 - len(found)
            snap = await read_range(self._redis, slug, after=bound, before=None, count=want)
            reaches_stream = snap.first_id is not None and snap.first_id <= bound.next()
            if not reaches_stream:
                # Between `bound` and the stream's first entry only SQL holds messages.
                upper = snap.first_id or snap.horizon.next()
                archived = await self._archive.between(room_id, slug, bound, upper, want)
                found += archived
                if len(archived) == want or snap.first_id is None:
                    break
            found += _messages(slug, snap.entries)
            if snap.exhausted:
                break
            bound = snap.entries[-1][0]
        return Page(found[:limit], has_more=len(found) > limit)

    async def stream_last_id(self, slug: str) -> StreamId | None:
        """The last id the room's stream ever gave (its entry may be trimmed by now), or
        None when the room has no stream: never written to, or lost with Redis."""
        return await last_generated_id(self._redis, slug)

    async def contains(self, room_id: int, slug: str, message_id: StreamId) -> bool:
        """Whether the room has a message with this id, in the stream or in SQL."""
        if await holds(self._redis, slug, message_id):
            return True
        found = await self._archive.between(
            room_id, slug, message_id.previous(), message_id.next(), 1
        )
        return bool(found)

    async def newest_id(self, room_id: int, slug: str) -> StreamId:
        """The id of the room's newest message, or 0-0 for a room without messages."""
        page = await self.page(room_id, slug, limit=1)
        return page.messages[-1].id if page.messages else ZERO
