"""Read marks: how far each member has read each room, one SQL row per (user, room).

The mark is the id of the last message the user has read; it only moves forward. Unread
counts are not stored anywhere: they are computed when asked (rooms/unread.py) from the
room's stream and archive above the mark, capped. So a message costs no write per
member (Zulip writes a `UserMessage` row per recipient per message; Mattermost bumps a
channel's total and each member's mention count per message): a read mark is written
only when a user reads.

Writes are coalesced on each node: a mark noted here waits at most `flush_s` with the
other marks noted meanwhile, and is written in one multi-row upsert that keeps the
greater of the stored and the new id (two tabs reading at once never move a mark back).
A user scrolling through a room writes one row per flush, however many marks their
client sent. The node's own pending marks are merged into what it reads, so its answers
never go back; another node may see a mark up to `flush_s` late (the user's other tabs
hear of it at once over pub/sub: hub/signals.py). A node killed with -9 loses at most
its last `flush_s` of marks: the user sees those messages as unread again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.accounts.users_table import now_utc
from chatroom.domain.stream_ids import StreamId
from chatroom.outages import STORE_ERRORS
from chatroom.store.tables import read_marks

log = logging.getLogger(__name__)

# (user id, room id)
MarkKey = tuple[int, int]
_KNOWN_MAX = 100_000


def _upsert(dialect: str) -> Any:
    """INSERT that keeps the greater of the stored and the new mark."""
    if dialect == "sqlite":
        lite = sqlite.insert(read_marks)
        new = lite.excluded
        return lite.on_conflict_do_update(
            index_elements=[read_marks.c.user_id, read_marks.c.room_id],
            set_={
                "stream_ms": new.stream_ms,
                "stream_seq": new.stream_seq,
                "updated_at": new.updated_at,
            },
            where=sa.or_(
                new.stream_ms > read_marks.c.stream_ms,
                sa.and_(
                    new.stream_ms == read_marks.c.stream_ms,
                    new.stream_seq > read_marks.c.stream_seq,
                ),
            ),
        )
    statement = mysql.insert(read_marks)
    new_ms, new_seq = statement.inserted.stream_ms, statement.inserted.stream_seq
    new_at = statement.inserted.updated_at
    ms, seq = read_marks.c.stream_ms, read_marks.c.stream_seq
    newer = sa.or_(new_ms > ms, sa.and_(new_ms == ms, new_seq > seq))
    # MySQL assigns left to right, each assignment seeing the ones before it: the
    # sequence and the time are decided on the stored values before the time changes.
    return statement.on_duplicate_key_update(
        [
            ("updated_at", sa.case((newer, new_at), else_=read_marks.c.updated_at)),
            ("stream_seq", sa.case((newer, new_seq), else_=seq)),
            ("stream_ms", sa.func.greatest(ms, new_ms)),
        ]
    )


class ReadMarks:
    """The read marks in SQL, with this node's writes coalesced."""

    def __init__(self, engine: AsyncEngine, *, flush_s: float = 1.0) -> None:
        self._engine = engine
        self._flush_s = flush_s
        self._pending: dict[MarkKey, StreamId] = {}
        # Marks this node wrote or read lately: a mark behind one of them is not news.
        self._known: dict[MarkKey, StreamId] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # Life cycle: a node runs the flusher; without it, `flush` writes on demand.

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="read-marks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(*STORE_ERRORS):
            await self.flush()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._flush_s)  # what comes meanwhile joins this write
            self._wake.clear()
            try:
                await self.flush()
            except STORE_ERRORS as exc:  # kept: the next flush tries again
                log.warning("could not store read marks: %s", exc)
                self._wake.set()

    # Marks.

    def note(self, user_id: int, room_id: int, mark: StreamId) -> bool:
        """Remember that the user has read the room up to `mark` (written within
        `flush_s`). False if this node knows a mark as far already."""
        key = (user_id, room_id)
        for seen in (self._pending.get(key), self._known.get(key)):
            if seen is not None and seen >= mark:
                return False
        self._pending[key] = mark
        self._wake.set()
        return True

    async def flush(self) -> None:
        """Write every pending mark now, in one statement."""
        if not self._pending:
            return
        # Pending until written: a read meanwhile must still see them (neither here nor
        # in SQL would say the user had never read the room).
        batch = dict(self._pending)
        await self.store(batch.items())
        for key, mark in batch.items():  # unless a newer note came meanwhile
            if self._pending.get(key) == mark:
                del self._pending[key]
        self._remember(batch.items())

    def _remember(self, marks: Iterable[tuple[MarkKey, StreamId]]) -> None:
        if len(self._known) > _KNOWN_MAX:
            self._known.clear()
        for key, mark in marks:
            known = self._known.get(key)
            if known is None or known < mark:
                self._known[key] = mark

    async def store(self, marks: Iterable[tuple[MarkKey, StreamId]]) -> None:
        """Write marks at once (each kept only where it is ahead of the stored one)."""
        now = now_utc()
        rows = [
            {
                "user_id": user_id,
                "room_id": room_id,
                "stream_ms": mark.ms,
                "stream_seq": mark.seq,
                "updated_at": now,
            }
            for (user_id, room_id), mark in marks
        ]
        if not rows:
            return
        async with self._engine.begin() as conn:
            await conn.execute(_upsert(conn.dialect.name), rows)

    async def of_user(self, user_id: int, room_ids: Iterable[int]) -> dict[int, StreamId]:
        """The user's marks in these rooms (a room never read has none)."""
        wanted = list(room_ids)
        if not wanted:
            return {}
        query = sa.select(
            read_marks.c.room_id, read_marks.c.stream_ms, read_marks.c.stream_seq
        ).where(read_marks.c.user_id == user_id, read_marks.c.room_id.in_(wanted))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        found = {int(row.room_id): StreamId(row.stream_ms, row.stream_seq) for row in rows}
        self._remember(((user_id, room_id), mark) for room_id, mark in found.items())
        for room_id in wanted:
            # What this node wrote or will write: a flush that committed while the query
            # above read is no longer pending, but known (a mark only moves forward).
            key = (user_id, room_id)
            for newer in (self._pending.get(key), self._known.get(key)):
                if newer is not None and (room_id not in found or found[room_id] < newer):
                    found[room_id] = newer
        return found
