"""The state of archived messages after their changes (store/change_writes.py applied
them): body, edit, delete, reactions, and who wrote them, for history pages and reply
previews. Read as `FoldedMessage`s, so that the changes still in the stream can be
applied on top (history_state.py): applying one SQL has applied already changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.domain.events import Author
from chatroom.domain.fold import FoldedMessage
from chatroom.domain.stream_ids import StreamId
from chatroom.store.tables import messages, reactions, users

LOOKUP_CHUNK = 500


@dataclass(slots=True)
class StoredState:
    author: Author
    folded: FoldedMessage
    edited_ms: int | None


def parse_key(key: str) -> StreamId:
    """The stream id of an event key (`change_writes.event_key`)."""
    ms, seq = key.split("-")
    return StreamId(int(ms), int(seq))


async def archived_states(
    engine: AsyncEngine, room_id: int, ids: Sequence[StreamId]
) -> dict[StreamId, StoredState]:
    """The archived ones of these messages, as their changes left them."""
    wanted = set(ids)
    found: dict[StreamId, StoredState] = {}
    moments = sorted({i.ms for i in wanted})
    async with engine.connect() as conn:
        for start in range(0, len(moments), LOOKUP_CHUNK):
            chunk = moments[start : start + LOOKUP_CHUNK]
            rows = (
                await conn.execute(
                    sa.select(
                        messages.c.stream_ms,
                        messages.c.stream_seq,
                        messages.c.user_id,
                        messages.c.body,
                        messages.c.edit_key,
                        messages.c.edited_at,
                        messages.c.deleted_at,
                        messages.c.deleted_by,
                        users.c.username,
                        users.c.display_name,
                    )
                    .select_from(messages.outerjoin(users, users.c.id == messages.c.user_id))
                    .where(messages.c.room_id == room_id, messages.c.stream_ms.in_(chunk))
                )
            ).all()
            for row in rows:
                message_id = StreamId(row.stream_ms, row.stream_seq)
                if message_id not in wanted:
                    continue
                edited = None if row.edit_key is None else parse_key(row.edit_key)
                folded = FoldedMessage(
                    row.body,
                    deleted=row.deleted_at is not None,
                    edited=edited,
                    deleted_by=row.deleted_by,
                )
                author = Author(
                    row.user_id, row.username or "deleted", row.display_name or "deleted user"
                )
                found[message_id] = StoredState(
                    author, folded, None if edited is None else edited.ms
                )
            present = (
                await conn.execute(
                    sa.select(
                        reactions.c.message_ms,
                        reactions.c.message_seq,
                        reactions.c.user_id,
                        reactions.c.emoji,
                        reactions.c.present,
                        reactions.c.event_key,
                    ).where(reactions.c.room_id == room_id, reactions.c.message_ms.in_(chunk))
                )
            ).all()
            for mark in present:
                state = found.get(StreamId(mark.message_ms, mark.message_seq))
                if state is not None:
                    key = (mark.user_id, mark.emoji)
                    state.folded.reactions[key] = (bool(mark.present), parse_key(mark.event_key))
    return found
