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
from chatroom.domain.events import MessageEvent, StreamEvent
from chatroom.domain.stream_ids import StreamId


@dataclass(slots=True)
class FoldedMessage:
    body: str
    deleted: bool = False
    edited: StreamId | None = None  # the edit that gave the body
    deleted_by: int | None = None
    reactions: dict[tuple[int, str], bool] = field(default_factory=dict)  # (user, emoji)

    def reacted(self) -> set[tuple[int, str]]:
        """The (user, emoji) pairs present; none on a deleted message (not shown)."""
        if self.deleted:
            return set()
        return {key for key, present in self.reactions.items() if present}


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
    if event.type == EDIT:
        if not message.deleted and event.body is not None:
            message.body, message.edited = event.body, event_id
    elif event.type == DELETE:
        if not message.deleted:
            message.body, message.deleted, message.deleted_by = "", True, event.author.id
    elif event.emoji is not None:
        message.reactions[(event.author.id, event.emoji)] = event.type == REACT
