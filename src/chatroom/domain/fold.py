"""The state of a room's messages folded from its events in stream order: what the
archiver's SQL must equal (store/change_writes.py applies the same rules, in any order),
and what a client holding every event since a message computes.

    edit      the new body, unless the message is deleted (the last edit wins)
    delete    the body is gone for good: no later edit brings one back
    react     the (user, emoji) is in the message's set; unreact takes it out

Pure: the fault campaign's checker and the tests fold what was acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from chatroom.domain.changes import DELETE, EDIT, REACT, ChangeEvent
from chatroom.domain.events import MessageEvent, Reaction, StreamEvent
from chatroom.domain.stream_ids import StreamId


@dataclass(slots=True)
class FoldedMessage:
    body: str
    deleted: bool = False
    edited: StreamId | None = None  # the edit that gave the body
    deleted_by: int | None = None
    # (user, emoji): whether present, after the react or unreact of this stream id.
    reactions: dict[tuple[int, str], tuple[bool, StreamId]] = field(default_factory=dict)

    def reacted(self) -> set[tuple[int, str]]:
        """The (user, emoji) pairs present; none on a deleted message (not shown)."""
        if self.deleted:
            return set()
        return {key for key, (present, _) in self.reactions.items() if present}

    def shown_reactions(self, viewer: int | None) -> tuple[Reaction, ...]:
        """Per emoji: how many users, whether the viewer is one; by first reaction."""
        if self.deleted:
            return ()
        counts: dict[str, tuple[StreamId, int, bool]] = {}
        for (user, emoji), (present, key) in self.reactions.items():
            if not present:
                continue
            first, count, me = counts.get(emoji, (key, 0, False))
            counts[emoji] = (min(first, key), count + 1, me or user == viewer)
        ordered = sorted(counts.items(), key=lambda item: item[1][0])
        return tuple(Reaction(emoji, count, me) for emoji, (_, count, me) in ordered)


def fold(events: Iterable[tuple[StreamId, StreamEvent]]) -> dict[StreamId, FoldedMessage]:
    """Messages by id, with every change applied in the order given (stream order). A
    change to a message not among them is ignored (its dead letter says why)."""
    state: dict[StreamId, FoldedMessage] = {}
    for event_id, event in events:
        if isinstance(event, MessageEvent):
            state.setdefault(event_id, FoldedMessage(event.body))
            continue
        message = state.get(event.target)
        if message is not None:
            apply(message, event_id, event)
    return state


def apply(message: FoldedMessage, event_id: StreamId, event: ChangeEvent) -> None:
    """Apply one change; applying it again, or after a later one, changes nothing."""
    if event.type == EDIT:
        newer = message.edited is None or event_id > message.edited
        if not message.deleted and event.body is not None and newer:
            message.body, message.edited = event.body, event_id
    elif event.type == DELETE:
        if not message.deleted:
            message.body, message.deleted, message.deleted_by = "", True, event.author.id
    elif event.emoji is not None:
        key = (event.author.id, event.emoji)
        known = message.reactions.get(key)
        if known is None or event_id > known[1]:
            message.reactions[key] = (event.type == REACT, event_id)
