"""Writing the archive: one idempotent multi-row upsert per chunk of messages.

Idempotent by the unique keys (room, stream id) and (room, sender, client_id): an entry
archived twice (a crash between commit and XACK) or a resend that slipped past Redis'
memory of its client_id becomes a no-op, while any other error still raises. The no-op
is explicit (ON DUPLICATE KEY UPDATE id = id, ON CONFLICT DO NOTHING); never INSERT
IGNORE, which would also swallow truncations and bad values.

Chunks stay under the server's max_allowed_packet (a statement over it fails), and the
dead letters of a batch are written in the same transaction as its messages: after the
commit every entry of the batch is in exactly one of the two tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from chatroom.domain.stream_ids import StreamId
from chatroom.store.tables import dead_letters, messages

EPOCH = datetime(1970, 1, 1)  # naive UTC, as the DATETIME columns store it
# Per-row bytes of a statement besides the body and client id: numbers, quotes, commas.
ROW_OVERHEAD_BYTES = 160
# SQLite has no packet limit; this only keeps its statements reasonable.
SQLITE_STATEMENT_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)  # not frozen: a frozen init costs more, and archivers make many
class ArchivedMessage:
    room_id: int
    id: StreamId
    user_id: int
    client_id: str
    body: str

    def row(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "stream_ms": self.id.ms,
            "stream_seq": self.id.seq,
            "user_id": self.user_id,
            "client_id": self.client_id,
            "body": self.body,
            "created_at": EPOCH + timedelta(milliseconds=self.id.ms),
        }

    def statement_bytes(self) -> int:
        """An upper bound of this row's share of an INSERT: at most 4 UTF-8 bytes per
        character, and escaping at most doubles them (no encoding needed to know)."""
        return ROW_OVERHEAD_BYTES + 2 * (4 * len(self.body) + len(self.client_id))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry that cannot become a message row, kept with the reason."""

    stream: str
    stream_id: str
    room_slug: str | None
    raw: bytes
    reason: str
    delivery_count: int

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


async def upsert_messages(
    conn: AsyncConnection,
    batch: Sequence[ArchivedMessage],
    *,
    chunk_rows: int = 1000,
    max_bytes: int = SQLITE_STATEMENT_BYTES,
) -> None:
    """Insert the batch in multi-row statements of at most `chunk_rows` rows and
    `max_bytes` bytes, inside the caller's transaction."""
    if not batch:
        return
    statement = _message_upsert(conn.dialect.name)
    sizes = [m.statement_bytes() for m in batch]
    for chunk in chunk_bounds(sizes, max_rows=chunk_rows, max_bytes=max_bytes):
        # executemany of one compiled statement: the driver sends it as one multi-row
        # INSERT (MySQL) or one prepared statement run per row (SQLite).
        await conn.execute(statement, [batch[i].row() for i in chunk])


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
    for chunk in chunk_bounds(sizes, max_rows=500, max_bytes=max_bytes):
        await conn.execute(statement, [letters[i].row(now) for i in chunk])


async def write_batch(
    conn: AsyncConnection,
    batch: Sequence[ArchivedMessage],
    letters: Sequence[DeadLetter],
    *,
    max_bytes: int,
    chunk_rows: int = 1000,
) -> None:
    """A batch's messages and dead letters, inside the caller's one transaction."""
    await upsert_messages(conn, batch, chunk_rows=chunk_rows, max_bytes=max_bytes)
    await insert_dead_letters(conn, letters, max_bytes=max_bytes)
