"""Writing the archive: one idempotent multi-row upsert per chunk of messages.

Idempotent by the unique keys (room, stream id) and (room, sender, client_id): an entry
archived twice (a crash between commit and XACK) becomes a no-op, while any other error
still raises. The no-op is explicit (ON DUPLICATE KEY UPDATE id = id, ON CONFLICT DO
NOTHING); never the IGNORE modifier, which would also swallow truncations and bad values.

A resend that slipped past Redis' memory of its client_id (appended again, under a new
stream id) is a no-op too, but not a silent one: when fewer rows were inserted than
submitted, the batch's stream ids missing from SQL are looked up in the same transaction
and returned as duplicates, with the id the message is stored under, for the caller to
dead-letter.

Chunks stay under the server's max_allowed_packet (a statement over it fails), and the
dead letters of a batch are written in the same transaction as its messages: after the
commit every entry of the batch is in exactly one of the two tables.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatroom.domain.stream_ids import StreamId
from chatroom.store.database import counts_changed_rows, create_engine, create_probe_engine
from chatroom.store.tables import dead_letters, messages, stored_moment

# Per-row bytes of a statement besides the body and client id: numbers, quotes, commas.
ROW_OVERHEAD_BYTES = 160
# SQLite has no packet limit; this only keeps its statements reasonable.
SQLITE_STATEMENT_BYTES = 64 * 1024 * 1024
LOOKUP_CHUNK = 500  # values per IN list when looking for duplicates
MESSAGES_PER_STATEMENT = 1000  # at most, and within the statement's byte limit
DEAD_LETTERS_PER_STATEMENT = 500
# The columns an archived message fills, in the order of `ArchivedMessage.values()`.
MESSAGE_COLUMNS = (
    "room_id",
    "stream_ms",
    "stream_seq",
    "user_id",
    "client_id",
    "body",
    "created_at",
    "reply_to",
)


# Prepared statements kept per writer connection: the upsert, the dead-letter insert and
# the duplicate lookups (IN lists of a few lengths); the oldest is closed past this.
WRITER_PREPARED_STATEMENTS = 16


def create_writes_engine(url: str, *, pool_size: int = 2) -> AsyncEngine:
    """The engine archive batches are written through, on MySQL/MariaDB:
    - without CLIENT_FOUND_ROWS (which SQLAlchemy turns on, and under which a duplicate
      the upsert skipped counts as a row), so that fewer rows counted than sent means a
      duplicate to look up;
    - with server-side prepared statements: on MariaDB the driver sends an executemany
      as one bulk execution of binary rows, with no escaping of each value into SQL text
      (most of the archiver's CPU otherwise) and no parsing of that text by the server."""
    return create_engine(
        url,
        pool_size=pool_size,
        changed_rows=True,
        prepared_statements=WRITER_PREPARED_STATEMENTS,
    )


MessageValues = tuple[int, int, int, int, str, str, datetime, str | None]


@dataclass(slots=True)  # not frozen: a frozen init costs more, and archivers make many
class ArchivedMessage:
    """A message row to archive. Never changed once made: its values are kept once
    asked for (the archiver asks while preparing a batch, off the transaction's path)."""

    room_id: int
    id: StreamId
    user_id: int
    client_id: str
    body: str
    reply_to: StreamId | None = None
    _values: MessageValues | None = field(default=None, init=False, repr=False, compare=False)

    def values(self) -> MessageValues:
        """The row's values, in the order of MESSAGE_COLUMNS."""
        if self._values is not None:
            return self._values
        ms = self.id.ms
        created_at = stored_moment(ms)
        reply_to = None if self.reply_to is None else str(self.reply_to)
        self._values = (
            self.room_id,
            ms,
            self.id.seq,
            self.user_id,
            self.client_id,
            self.body,
            created_at,
            reply_to,
        )
        return self._values

    def row(self) -> dict[str, Any]:
        return dict(zip(MESSAGE_COLUMNS, self.values(), strict=True))

    def statement_bytes(self) -> int:
        """An upper bound of this row's share of an INSERT: at most 4 UTF-8 bytes per
        character, and escaping at most doubles them (no encoding needed to know)."""
        return ROW_OVERHEAD_BYTES + 2 * (4 * len(self.body) + len(self.client_id))


# A dead letter keeps at most this much of its entry's bytes (a valid message envelope is
# smaller): an entry over max_allowed_packet would make its dead letter one statement
# over it too, which MariaDB answers by dropping the connection.
DEAD_LETTER_RAW_MAX = 64 * 1024


def bounded_raw(raw: bytes, reason: str) -> tuple[bytes, str]:
    """The bytes a dead letter keeps and its reason: past DEAD_LETTER_RAW_MAX, the first
    bytes, and the reason says the entry's full length and SHA-256."""
    if len(raw) <= DEAD_LETTER_RAW_MAX:
        return raw, reason
    digest = hashlib.sha256(raw).hexdigest()
    return raw[:DEAD_LETTER_RAW_MAX], (
        f"{reason} (entry of {len(raw)} bytes, sha256 {digest}: "
        f"its first {DEAD_LETTER_RAW_MAX} bytes are kept)"
    )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry that cannot become a message row, kept with the reason (build one with
    `of_entry`, which bounds the bytes kept)."""

    stream: str
    stream_id: str
    room_slug: str | None
    raw: bytes
    reason: str
    delivery_count: int

    @classmethod
    def of_entry(
        cls,
        stream: str,
        stream_id: str,
        room_slug: str | None,
        raw: bytes,
        reason: str,
        delivery_count: int,
    ) -> DeadLetter:
        kept, reason = bounded_raw(raw, reason)
        return cls(stream, stream_id, room_slug, kept, reason, delivery_count)

    def row(self, now: datetime) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "stream_id": self.stream_id,
            "room_slug": self.room_slug,
            "raw": self.raw,
            "reason": self.reason,
            "delivery_count": self.delivery_count,
            "created_at": now,
        }

    def statement_bytes(self) -> int:
        return ROW_OVERHEAD_BYTES + 2 * (len(self.raw) + len(self.reason.encode()) + 300)


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A message of the batch not stored under its own stream id: SQL already holds its
    (room, sender, client_id), appended twice to the stream."""

    index: int  # in the batch
    first: StreamId | None  # the id the message is stored under (None: gone meanwhile)


def chunk_bounds(sizes: Sequence[int], *, max_rows: int, max_bytes: int) -> list[range]:
    """Consecutive ranges of rows, each at most `max_rows` rows and `max_bytes` bytes
    (a row bigger than `max_bytes` alone gets its own chunk: the server says if it fits)."""
    chunks: list[range] = []
    start, used = 0, 0
    for index, size in enumerate(sizes):
        if index > start and (index - start >= max_rows or used + size > max_bytes):
            chunks.append(range(start, index))
            start, used = index, 0
        used += size
    if start < len(sizes):
        chunks.append(range(start, len(sizes)))
    return chunks


async def answers_on_a_fresh_connection(engine: AsyncEngine, timeout_s: float = 10.0) -> bool:
    """Whether SQL answers a trivial query on a new connection (none of the pool's, which
    may be the broken one): tells a refused statement from an outage."""
    probe = create_probe_engine(engine.url)
    try:
        async with asyncio.timeout(timeout_s), probe.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError):
        return False
    finally:
        await probe.dispose()
    return True


async def statement_limit(conn: AsyncConnection) -> int:
    """The bytes one statement may take: MySQL's max_allowed_packet less a margin."""
    if conn.dialect.name != "mysql":
        return SQLITE_STATEMENT_BYTES
    packet = int((await conn.execute(sa.text("SELECT @@max_allowed_packet"))).scalar_one())
    return max(64 * 1024, packet - 64 * 1024)


def _message_upsert(dialect: str) -> Any:
    if dialect == "sqlite":
        return sqlite.insert(messages).on_conflict_do_nothing()
    if dialect == "mysql":
        statement = mysql.insert(messages)
        return statement.on_duplicate_key_update(id=statement.table.c.id)
    raise NotImplementedError(f"no archive upsert for {dialect}")


def _dead_letter_upsert(dialect: str) -> Any:
    if dialect == "sqlite":
        return sqlite.insert(dead_letters).on_conflict_do_nothing()
    if dialect == "mysql":
        statement = mysql.insert(dead_letters)
        return statement.on_duplicate_key_update(id=statement.table.c.id)
    raise NotImplementedError(f"no dead-letter upsert for {dialect}")


@lru_cache(maxsize=8)
def _message_upsert_text(dialect: Dialect) -> str:
    """The upsert as the driver's SQL text with positional parameters in the order of
    MESSAGE_COLUMNS, compiled once per dialect rather than once per batch."""
    compiled = _message_upsert(dialect.name).compile(
        dialect=dialect, column_keys=list(MESSAGE_COLUMNS)
    )
    if tuple(compiled.positiontup or ()) != MESSAGE_COLUMNS:
        raise RuntimeError(f"unexpected parameter order {compiled.positiontup}")
    return str(compiled)


async def upsert_messages(
    conn: AsyncConnection,
    batch: Sequence[ArchivedMessage],
    *,
    max_bytes: int = SQLITE_STATEMENT_BYTES,
) -> int:
    """Insert the batch in multi-row statements of at most MESSAGES_PER_STATEMENT rows
    and `max_bytes` bytes, inside the caller's transaction. Returns the driver's row count:
    the rows inserted where `counts_changed_rows(conn)`, else at most the batch size."""
    if not batch:
        return 0
    sizes = [m.statement_bytes() for m in batch]
    chunks = chunk_bounds(sizes, max_rows=MESSAGES_PER_STATEMENT, max_bytes=max_bytes)
    inserted = 0
    if conn.dialect.name == "mysql":
        # The driver's executemany of tuples, with none of SQLAlchemy's per-row parameter
        # processing (MySQL's types need none: the driver converts ints, str and datetime).
        # It is one bulk execution on a `create_writes_engine` connection to MariaDB, else
        # one multi-row INSERT.
        text = _message_upsert_text(conn.dialect)
        for chunk in chunks:
            rows = [batch[i].values() for i in chunk]
            result = await conn.exec_driver_sql(text, rows)
            inserted += max(0, result.rowcount)
        return inserted
    # SQLite: SQLAlchemy's processing stores DATETIME as its text, as every reader expects;
    # the driver runs one prepared statement per row.
    statement = _message_upsert(conn.dialect.name)
    for chunk in chunks:
        result = await conn.execute(statement, [batch[i].row() for i in chunk])
        inserted += max(0, result.rowcount)
    return inserted


async def find_duplicates(
    conn: AsyncConnection, batch: Sequence[ArchivedMessage]
) -> list[Duplicate]:
    """After the batch's upsert, in its transaction: the messages SQL does not hold under
    their own stream id. Each lost to the unique (room, sender, client_id), so an earlier
    append of the same message is stored; an entry archived before under its own id (a
    replay) is not a duplicate. Lookups use the unique indexes' leading columns."""
    by_room: dict[int, list[int]] = {}
    for index, message in enumerate(batch):
        by_room.setdefault(message.room_id, []).append(index)
    missing: list[int] = []
    for room_id, indexes in by_room.items():
        stored: set[tuple[int, int]] = set()
        moments = sorted({batch[i].id.ms for i in indexes})
        for start in range(0, len(moments), LOOKUP_CHUNK):
            query = sa.select(messages.c.stream_ms, messages.c.stream_seq).where(
                messages.c.room_id == room_id,
                messages.c.stream_ms.in_(moments[start : start + LOOKUP_CHUNK]),
            )
            stored.update((ms, seq) for ms, seq in (await conn.execute(query)).all())
        missing += [i for i in indexes if (batch[i].id.ms, batch[i].id.seq) not in stored]
    if not missing:
        return []
    by_sender: dict[tuple[int, int], set[str]] = {}
    for i in missing:
        by_sender.setdefault((batch[i].room_id, batch[i].user_id), set()).add(batch[i].client_id)
    first: dict[tuple[int, int, str], StreamId] = {}
    for (room_id, user_id), client_ids in by_sender.items():
        wanted = sorted(client_ids)
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            query = sa.select(
                messages.c.client_id, messages.c.stream_ms, messages.c.stream_seq
            ).where(
                messages.c.room_id == room_id,
                messages.c.user_id == user_id,
                messages.c.client_id.in_(wanted[start : start + LOOKUP_CHUNK]),
            )
            for row in (await conn.execute(query)).all():
                first[(room_id, user_id, row.client_id)] = StreamId(row.stream_ms, row.stream_seq)
    return [
        Duplicate(i, first.get((batch[i].room_id, batch[i].user_id, batch[i].client_id)))
        for i in sorted(missing)
    ]


async def archived_ids(
    engine: AsyncEngine, wanted: dict[int, list[StreamId]]
) -> set[tuple[int, StreamId]]:
    """Which of these (room id, message id) SQL holds."""
    found: set[tuple[int, StreamId]] = set()
    async with engine.connect() as conn:
        for room_id, ids in wanted.items():
            for start in range(0, len(ids), LOOKUP_CHUNK):
                chunk = ids[start : start + LOOKUP_CHUNK]
                query = sa.select(messages.c.stream_ms, messages.c.stream_seq).where(
                    messages.c.room_id == room_id,
                    messages.c.stream_ms.in_(sorted({i.ms for i in chunk})),
                )
                stored = {StreamId(ms, seq) for ms, seq in (await conn.execute(query)).all()}
                found.update((room_id, i) for i in chunk if i in stored)
    return found


async def insert_dead_letters(
    conn: AsyncConnection,
    letters: Sequence[DeadLetter],
    *,
    max_bytes: int = SQLITE_STATEMENT_BYTES,
) -> None:
    """Insert dead letters (a no-op for an entry already dead-lettered)."""
    if not letters:
        return
    statement = _dead_letter_upsert(conn.dialect.name)
    now = datetime.now(UTC).replace(tzinfo=None)
    sizes = [letter.statement_bytes() for letter in letters]
    for chunk in chunk_bounds(sizes, max_rows=DEAD_LETTERS_PER_STATEMENT, max_bytes=max_bytes):
        await conn.execute(statement, [letters[i].row(now) for i in chunk])


async def write_batch(
    conn: AsyncConnection,
    batch: Sequence[ArchivedMessage],
    letters: Sequence[DeadLetter],
    *,
    max_bytes: int,
) -> list[Duplicate]:
    """A batch's messages and dead letters, inside the caller's one transaction; returns
    the messages that were duplicates of stored ones (see `find_duplicates`)."""
    inserted = await upsert_messages(conn, batch, max_bytes=max_bytes)
    duplicates: list[Duplicate] = []
    # Where row counts are exact, look only when something was not inserted (rare).
    if batch and (inserted < len(batch) or not counts_changed_rows(conn)):
        duplicates = await find_duplicates(conn, batch)
    await insert_dead_letters(conn, letters, max_bytes=max_bytes)
    return duplicates
