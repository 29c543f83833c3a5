"""Writing the archive: one idempotent multi-row upsert per chunk of messages.

Idempotent by the unique keys (room, stream id) and (room, sender, client_id): an entry
archived twice (a crash between commit and XACK) or a resend that slipped past Redis'
memory of its client_id becomes a no-op, while any other error still raises. The no-op
is explicit (ON DUPLICATE KEY UPDATE id = id, ON CONFLICT DO NOTHING); never INSERT
IGNORE, which would also swallow truncations and bad values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from chatroom.domain.stream_ids import StreamId
from chatroom.store.tables import messages


@dataclass(frozen=True, slots=True)
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
            "created_at": datetime.fromtimestamp(self.id.ms / 1000, tz=UTC).replace(tzinfo=None),
        }


async def upsert_messages(
    conn: AsyncConnection, batch: Sequence[ArchivedMessage], *, chunk_rows: int = 1000
) -> None:
    """Insert the batch in multi-row statements of at most `chunk_rows` rows, inside the
    caller's transaction."""
    dialect = conn.dialect.name
    for start in range(0, len(batch), chunk_rows):
        rows = [m.row() for m in batch[start : start + chunk_rows]]
        if dialect == "sqlite":
            await conn.execute(sqlite.insert(messages).values(rows).on_conflict_do_nothing())
        elif dialect == "mysql":
            statement = mysql.insert(messages).values(rows)
            await conn.execute(statement.on_duplicate_key_update(id=statement.table.c.id))
        else:
            raise NotImplementedError(f"no archive upsert for {dialect}")
