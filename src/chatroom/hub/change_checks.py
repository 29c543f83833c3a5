"""The send path's checks of a change (edit, delete, react, unreact) and of a reply:
the target must be a message of this room (in its stream or in SQL), an edit must be
the sender's own message, and a delete the sender's own or, for the room's owner or an
admin, anyone's (moderation). Plain sends never come here: they cost no extra read.

The answer is the event to append, or the `error` frame to send back.
"""

from __future__ import annotations

from typing import Protocol

from chatroom.domain import frames
from chatroom.domain.changes import DELETE, EDIT, ChangeEvent
from chatroom.domain.events import Author, Message, MessageEvent, StreamEvent
from chatroom.domain.frames import ErrorCode
from chatroom.domain.stream_ids import StreamId
from chatroom.hub.subscription import RoomRef


class Messages(Protocol):
    """Where a target is looked up (`History.find_message`)."""

    async def find_message(
        self, room_id: int, slug: str, message_id: StreamId
    ) -> Message | None: ...


def _not_found(client_id: str, what: StreamId) -> str:
    return frames.error(
        ErrorCode.MESSAGE_NOT_FOUND,
        f"there is no message {what} in this room",
        client_id=client_id,
    )


def _forbidden(client_id: str, why: str) -> str:
    return frames.error(ErrorCode.FORBIDDEN, why, client_id=client_id)


async def checked_event(
    messages: Messages, room: RoomRef, user: Author, frame: frames.Send | frames.Change
) -> StreamEvent | str:
    """The event the frame appends, or the error frame saying why it may not."""
    if isinstance(frame, frames.Send):
        if frame.reply_to is not None:
            quoted = await messages.find_message(room.id, room.slug, frame.reply_to)
            if quoted is None:
                return _not_found(frame.client_id, frame.reply_to)
        return MessageEvent(room.slug, user, frame.body, frame.client_id, frame.reply_to)
    target = await messages.find_message(room.id, room.slug, frame.target)
    if target is None:
        return _not_found(frame.client_id, frame.target)
    own = target.author.id == user.id
    if frame.type == EDIT:
        if not own:
            return _forbidden(frame.client_id, "only its author may edit a message")
        return ChangeEvent(EDIT, room.slug, user, frame.target, frame.client_id, body=frame.body)
    if frame.type == DELETE:
        if not own and not room.moderator:
            return _forbidden(
                frame.client_id,
                "only its author, the room's owner or an admin may delete a message",
            )
        return ChangeEvent(
            DELETE,
            room.slug,
            user,
            frame.target,
            frame.client_id,
            reason=frame.reason,
            moderated=not own,
        )
    return ChangeEvent(
        frame.type, room.slug, user, frame.target, frame.client_id, emoji=frame.emoji
    )
