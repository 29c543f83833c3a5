"""The current state of a page of messages: what SQL's archive says (edits, deletes and
reactions the archiver applied), with the changes still in the stream applied on top,
and the preview of each message replied to.

The stream's changes are read from the page's oldest message on, at most
`STREAM_CHANGES_MAX` entries: past that backlog (an archiver far behind) a page shows
the state SQL has, and a client converges through the live and replayed change frames.
"""

from __future__ import annotations

from dataclasses import replace

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.domain.changes import ChangeEvent
from chatroom.domain.events import (
    InvalidEvent,
    Message,
    MessageEvent,
    MessageState,
    ReplyPreview,
    decode_event,
)
from chatroom.domain.fold import FoldedMessage, apply
from chatroom.domain.stream_ids import StreamId
from chatroom.store.message_states import StoredState, archived_states
from chatroom.streams.entries import parse_entries

STREAM_CHANGES_MAX = 10_000


async def current(
    redis: Redis,
    engine: AsyncEngine,
    room_id: int,
    slug: str,
    page: list[Message],
    viewer: int | None,
) -> list[Message]:
    """The page's messages as they are now, with `state` (edited_at, deleted,
    reactions with `me` for `viewer`, reply preview)."""
    if not page:
        return page
    replied = {m.reply_to for m in page if m.reply_to is not None}
    wanted = {m.id for m in page} | replied
    stored = await archived_states(engine, room_id, sorted(wanted))
    states: dict[StreamId, StoredState] = dict(stored)
    for message in page:
        if message.id not in states:
            states[message.id] = StoredState(message.author, FoldedMessage(message.body), None)
    oldest = min(wanted)
    reply = await redis.xrange(
        redis_keys.room_stream(slug), min=str(oldest), max="+", count=STREAM_CHANGES_MAX
    )
    for entry_id, fields in parse_entries(reply or []):
        try:
            event = decode_event(slug, fields)
        except InvalidEvent:
            continue
        if isinstance(event, MessageEvent):
            if entry_id in wanted and entry_id not in states:  # a reply's target, not archived
                states[entry_id] = StoredState(event.author, FoldedMessage(event.body), None)
            continue
        _apply(states, entry_id, event)
    shown = []
    for message in page:
        state = states[message.id]
        folded = state.folded
        preview = None
        if message.reply_to is not None and message.reply_to in states:
            quoted = states[message.reply_to]
            preview = ReplyPreview(
                message.reply_to, quoted.author, quoted.folded.body, quoted.folded.deleted
            )
        edited = folded.edited.ms if folded.edited is not None else None
        shown.append(
            replace(
                message,
                body=folded.body,
                state=MessageState(
                    edited_ms=None if folded.deleted else edited,
                    deleted=folded.deleted,
                    reactions=folded.shown_reactions(viewer),
                    reply=preview,
                ),
            )
        )
    return shown


def _apply(states: dict[StreamId, StoredState], entry_id: StreamId, event: ChangeEvent) -> None:
    state = states.get(event.target)
    if state is not None:
        apply(state.folded, entry_id, event)
