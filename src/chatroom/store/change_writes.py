"""Applying the changes of a batch (edit, delete, react, unreact) to the archive, inside
the batch's transaction, after its messages: exactly once in effect, in any order.

Each change is kept in `message_events` under its own stream id (an upsert: a replayed
batch adds nothing), then applied so that applying it again, or after a later change,
changes nothing:

    edit      the body, if the message is not deleted and no later edit was applied
              (`edit_key`, the stream id of the edit that last changed it)
    delete    the body becomes '' (a tombstone), once; no edit applies after it
    react     the (message, user, emoji) row is present or not as its last react or
    unreact   unreact by stream id says (`event_key`): a set, last writer wins

An edit or delete whose message is not archived yet (it is pending in the stream, held
by another archiver, or a suspect tried alone later) stays in `message_events` with
`applied` false; a later look (`apply_held`, when archiver/held_sweeps.py says) applies
the held changes whose message has arrived.
Reactions need no message row: they are applied at once.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from chatroom.domain.changes import DELETE, EDIT, REACT, ChangeEvent
from chatroom.domain.moderation import Action
from chatroom.domain.stream_ids import StreamId
from chatroom.store.tables import (
    message_events,
    messages,
    moderation_log,
    reactions,
    stored_moment,
    users,
)

HELD_PER_BATCH = 1000  # held changes applied per batch at most (the rest next batch)


def event_key(stream_id: StreamId) -> str:
    """A stream id as text that sorts as the ids do (both parts zero-padded)."""
    return f"{stream_id.ms:020d}-{stream_id.seq:019d}"


async def _log_moderation_delete(conn: AsyncConnection, row: Any) -> None:
    """A moderation delete, applied now (once: its event is marked applied in this
    transaction), goes into the moderation log with its reason. Who deleted and whose it
    was are users of this site; an entry whose actor is not (a stream entry written by
    hand, a user since removed) is not logged rather than fail the batch."""
    author = sa.select(users.c.id).where(users.c.id == row.author_id).scalar_subquery()
    entry = sa.select(
        sa.literal(Action.DELETE),
        users.c.id,
        author,
        sa.literal(row.room_id),
        sa.literal(f"{row.target_ms}-{row.target_seq}"),
        sa.literal(row.reason or ""),
        sa.null(),
        sa.literal(stored_moment(row.stream_ms), moderation_log.c.created_at.type),
    ).where(users.c.id == row.user_id)
    columns = ["action", "actor_id", "target_id", "room_id", "message_id", "reason", "until"]
    await conn.execute(moderation_log.insert().from_select([*columns, "created_at"], entry))


@dataclass(slots=True)
class ArchivedChange:
    """A change as the archiver writes it: its room's id, its stream id and the event."""

    room_id: int
    id: StreamId
    event: ChangeEvent

    @property
    def waits_for_its_message(self) -> bool:
        """An edit or delete: applied once its message is archived (a reaction at once)."""
        return self.event.type in (EDIT, DELETE)

    def row(self) -> dict[str, Any]:
        event = self.event
        return {
            "room_id": self.room_id,
            "stream_ms": self.id.ms,
            "stream_seq": self.id.seq,
            "type": event.type,
            "target_ms": event.target.ms,
            "target_seq": event.target.seq,
            "user_id": event.author.id,
            "client_id": event.client_id,
            "body": event.body,
            "emoji": event.emoji,
            "reason": event.reason,
            "moderated": event.moderated,
            "applied": not self.waits_for_its_message,
            "created_at": stored_moment(self.id.ms),
        }

    def statement_bytes(self) -> int:
        body = self.event.body or ""
        reason = self.event.reason or ""
        return 400 + 8 * (len(body) + len(reason))


def _insert_events(dialect: str) -> Any:
    if dialect == "sqlite":
        return sqlite.insert(message_events).on_conflict_do_nothing()
    statement = mysql.insert(message_events)
    return statement.on_duplicate_key_update(id=statement.table.c.id)


def _upsert_reaction(dialect: str) -> Any:
    """Insert the (message, user, emoji) row, or update it if this change is later than
    the one it holds (`event_key`)."""
    if dialect == "sqlite":
        lite = sqlite.insert(reactions)
        return lite.on_conflict_do_update(
            index_elements=["room_id", "message_ms", "message_seq", "user_id", "emoji"],
            set_={
                "present": lite.excluded.present,
                "event_key": lite.excluded.event_key,
                "first_key": sa.case(
                    (reactions.c.present, reactions.c.first_key),
                    else_=lite.excluded.first_key,
                ),
            },
            where=lite.excluded.event_key > reactions.c.event_key,
        )
    upsert = mysql.insert(reactions)
    new = upsert.inserted
    newer = new.event_key > reactions.c.event_key
    # MySQL assigns left to right, each seeing the ones before: event_key goes last.
    return upsert.on_duplicate_key_update(
        [
            (
                "first_key",
                sa.case(
                    (sa.and_(newer, sa.not_(reactions.c.present)), new.first_key),
                    else_=reactions.c.first_key,
                ),
            ),
            (
                "present",
                sa.case((newer, new.present), else_=reactions.c.present),
            ),
            (
                "event_key",
                sa.case((newer, new.event_key), else_=reactions.c.event_key),
            ),
        ]
    )


async def apply_changes(
    conn: AsyncConnection,
    changes: Sequence[ArchivedChange],
    *,
    held_in: Collection[int] | None = None,
    held_not_in: Collection[int] = (),
    look: bool = True,
) -> list[tuple[int, StreamId]]:
    """Keep the batch's changes, apply its reactions, then (with `look`) apply every held
    edit and delete whose message is archived (this batch's included), in stream order:
    of every room, or only of the rooms `held_in` when given, and never of the rooms
    `held_not_in` (a batch shared among parallel writers: archiver/partitions.py).
    Returns the held changes applied, by room id and stream id (see `apply_held`)."""
    dialect = conn.dialect.name
    if changes:
        await conn.execute(_insert_events(dialect), [c.row() for c in changes])
        reacting = [c for c in changes if not c.waits_for_its_message]
        if reacting:
            await conn.execute(
                _upsert_reaction(dialect),
                [
                    {
                        "room_id": c.room_id,
                        "message_ms": c.event.target.ms,
                        "message_seq": c.event.target.seq,
                        "user_id": c.event.author.id,
                        "emoji": c.event.emoji,
                        "present": c.event.type == REACT,
                        "event_key": event_key(c.id),
                        "first_key": event_key(c.id),
                    }
                    for c in reacting
                ],
            )
    if not look:
        return []
    return await apply_held(conn, held_in=held_in, held_not_in=held_not_in)


async def apply_held(
    conn: AsyncConnection,
    *,
    held_in: Collection[int] | None = None,
    held_not_in: Collection[int] = (),
) -> list[tuple[int, StreamId]]:
    """Apply the held edits and deletes whose message is archived now, in stream order,
    and mark them applied (of the rooms in `held_in` if given, not in `held_not_in`);
    returns them by room id and stream id, at most HELD_PER_BATCH (then more may be
    ready)."""
    e, m = message_events, messages
    if held_in is not None and not held_in:
        return []
    where = [e.c.applied == sa.false()]
    if held_in is not None:
        where.append(e.c.room_id.in_(sorted(held_in)))
    if held_not_in:
        where.append(e.c.room_id.not_in(sorted(held_not_in)))
    held = (
        sa.select(
            e.c.id,
            e.c.room_id,
            e.c.stream_ms,
            e.c.stream_seq,
            e.c.type,
            e.c.target_ms,
            e.c.target_seq,
            e.c.user_id,
            e.c.body,
            e.c.reason,
            e.c.moderated,
            m.c.user_id.label("author_id"),
        )
        .select_from(
            e.join(
                m,
                sa.and_(
                    m.c.room_id == e.c.room_id,
                    m.c.stream_ms == e.c.target_ms,
                    m.c.stream_seq == e.c.target_seq,
                ),
            )
        )
        .where(*where)
        .order_by(e.c.stream_ms, e.c.stream_seq)
        .limit(HELD_PER_BATCH)
    )
    rows = (await conn.execute(held)).all()
    for row in rows:
        target = sa.and_(
            m.c.room_id == row.room_id,
            m.c.stream_ms == row.target_ms,
            m.c.stream_seq == row.target_seq,
            m.c.deleted_at.is_(None),  # a delete wins over any edit
        )
        if row.type == EDIT:
            key = event_key(StreamId(row.stream_ms, row.stream_seq))
            await conn.execute(
                m.update()
                .where(target, sa.or_(m.c.edit_key.is_(None), m.c.edit_key < key))
                .values(body=row.body, edited_at=stored_moment(row.stream_ms), edit_key=key)
            )
        else:
            deleted = await conn.execute(
                m.update()
                .where(target)
                .values(
                    body="",
                    deleted_at=stored_moment(row.stream_ms),
                    deleted_by=row.user_id,
                    delete_reason=row.reason,
                )
            )
            if row.moderated and deleted.rowcount == 1:
                await _log_moderation_delete(conn, row)
    if rows:
        await conn.execute(
            e.update().where(e.c.id.in_([row.id for row in rows])).values(applied=True)
        )
    return [(row.room_id, StreamId(row.stream_ms, row.stream_seq)) for row in rows]
