"""Message search in SQL: the archived messages a user can see that hold every word asked.

Who can see what is decided here, in the query itself: a message is found only in a public
room, or in a private room or direct conversation the user is a member of now (the same
rule as `RoomDirectory.visible`), so no later step can leak one. A deleted message (its
body emptied in SQL) is never found.

The engines: MySQL/MariaDB's InnoDB FULLTEXT index (boolean mode) and SQLite's FTS5
table `messages_fts` (migration 0004), both kept in step with every INSERT, UPDATE and
DELETE of `messages`, so that an edit is found by its new words and not its old ones.
Results are ranked by the engine's relevance (InnoDB's score, FTS5's bm25), then newest
first. Pages are offsets into that order, below the newest row the first page saw: a
message archived meanwhile does not shift them. Relevance follows the whole archive's word
counts, so a page can rarely repeat a result of the page before; a client keeps each id once.

Only archived messages are found: the newest ones, still only in their room's Redis
stream (the archiver moves them within about a second), are not searched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatroom.domain.events import Author, Message
from chatroom.domain.rooms import Room
from chatroom.domain.search_query import DEPTH_MAX, Cursor, SearchQuery, highlights
from chatroom.domain.stream_ids import StreamId
from chatroom.store.tables import messages, room_members, rooms, users

# SQLite's FTS5 table over messages.body (not in the metadata: created by migration 0004).
messages_fts = sa.table("messages_fts", sa.column("rowid", sa.Integer()))
_FTS: sa.ColumnClause[Any] = sa.literal_column("messages_fts")

_COLUMNS = (
    messages.c.id.label("row_id"),
    messages.c.stream_ms,
    messages.c.stream_seq,
    messages.c.user_id,
    messages.c.client_id,
    messages.c.body,
    users.c.username,
    users.c.display_name,
    rooms.c.id.label("room_id"),
    rooms.c.slug,
    rooms.c.title,
    rooms.c.is_private,
    rooms.c.owner_id,
)


@dataclass(frozen=True, slots=True)
class Hit:
    """One message found, with its room and the ranges of its body that matched."""

    message: Message
    room: Room
    highlights: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Results:
    hits: list[Hit]
    next_cursor: Cursor | None


@dataclass(frozen=True, slots=True)
class InnodbLimits:
    """What the server's InnoDB FULLTEXT index leaves out (its settings)."""

    min_token: int
    stopwords: bool


class MessageSearch:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._innodb: InnodbLimits | None = None

    async def search(
        self,
        user_id: int,
        query: SearchQuery,
        *,
        room_id: int | None = None,
        cursor: Cursor | None = None,
        limit: int,
    ) -> Results:
        """A page of the messages `user_id` can see that hold every term of `query`
        (in one room, if `room_id`), best first, then newest first."""
        async with self._engine.connect() as conn:
            newest_row = cursor.newest_row if cursor else await _newest_row(conn)
            offset = cursor.offset if cursor else 0
            limit = min(limit, DEPTH_MAX - offset)
            if limit <= 0:
                return Results([], None)
            statement = await self._matching(conn, query)
            statement = statement.where(
                messages.c.id <= newest_row,
                messages.c.body != "",
                sa.or_(rooms.c.is_private == sa.false(), rooms.c.id.in_(_memberships(user_id))),
            )
            if room_id is not None:
                statement = statement.where(messages.c.room_id == room_id)
            statement = statement.limit(limit + 1).offset(offset)
            rows = (await conn.execute(statement)).all()
        hits = [_hit(row, query) for row in rows[:limit]]
        more = len(rows) > limit and offset + limit < DEPTH_MAX
        return Results(hits, Cursor(offset + limit, newest_row) if more else None)

    async def _matching(self, conn: AsyncConnection, query: SearchQuery) -> sa.Select[Any]:
        """The engine's match of every term, ranked, joined to rooms and users."""
        order_newest = (messages.c.stream_ms.desc(), messages.c.stream_seq.desc())
        if conn.dialect.name == "sqlite":
            rank = sa.func.bm25(_FTS)  # lower is better
            return (
                sa.select(*_COLUMNS)
                .select_from(
                    messages_fts.join(messages, messages.c.id == messages_fts.c.rowid)
                    .join(rooms, rooms.c.id == messages.c.room_id)
                    .outerjoin(users, users.c.id == messages.c.user_id)
                )
                .where(_FTS.op("MATCH")(query.fts5()))
                .order_by(rank, *order_newest, messages.c.id.desc())
            )
        limits = await self._innodb_limits(conn)
        against, substrings = query.innodb(min_token=limits.min_token, stopwords=limits.stopwords)
        relevance = mysql.match(messages.c.body, against=against).in_boolean_mode()
        return (
            sa.select(*_COLUMNS)
            .select_from(
                messages.join(rooms, rooms.c.id == messages.c.room_id).outerjoin(
                    users, users.c.id == messages.c.user_id
                )
            )
            .where(relevance, *(messages.c.body.contains(t, autoescape=True) for t in substrings))
            .order_by(relevance.desc(), *order_newest, messages.c.id.desc())
        )

    async def _innodb_limits(self, conn: AsyncConnection) -> InnodbLimits:
        if self._innodb is None:
            row = (
                await conn.execute(
                    sa.text("SELECT @@innodb_ft_min_token_size, @@innodb_ft_enable_stopword")
                )
            ).one()
            self._innodb = InnodbLimits(min_token=int(row[0]), stopwords=bool(row[1]))
        return self._innodb


def _memberships(user_id: int) -> sa.Select[Any]:
    return sa.select(room_members.c.room_id).where(room_members.c.user_id == user_id)


async def _newest_row(conn: AsyncConnection) -> int:
    return int(await conn.scalar(sa.select(sa.func.coalesce(sa.func.max(messages.c.id), 0))) or 0)


def _hit(row: Any, query: SearchQuery) -> Hit:  # a Row of _COLUMNS
    author = Author(
        id=row.user_id,
        username=row.username or "deleted",
        display_name=row.display_name or "deleted user",
    )
    room = Room(
        id=int(row.room_id),
        slug=row.slug,
        title=row.title,
        is_private=bool(row.is_private),
        owner_id=None if row.owner_id is None else int(row.owner_id),
    )
    message = Message(
        id=StreamId(row.stream_ms, row.stream_seq),
        room=room.slug,
        author=author,
        body=row.body,
        client_id=row.client_id,
    )
    return Hit(message, room, highlights(row.body, query.terms))
