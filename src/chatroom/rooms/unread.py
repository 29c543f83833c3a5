"""Unread counts: how many messages of others a member has not read in a room, and how
many of them mention the member, computed from the room's history above the read mark.

Nothing is counted ahead of time: the count reads the room's gapless history after the
mark (chatroom.history: the stream's hot window in one XRANGE, SQL only for the part the
archiver has trimmed), at most `UNREAD_COUNT_MAX` messages, so a room read long ago costs
one bounded page and shows "99+". A room with no mark (joined before read marks
existed) counts nothing until the member reads it once.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatroom.domain.events import Author
from chatroom.domain.mentions import mentions
from chatroom.domain.rooms import Room
from chatroom.domain.rules import UNREAD_COUNT_MAX
from chatroom.domain.stream_ids import StreamId
from chatroom.history import History


@dataclass(frozen=True, slots=True)
class Unread:
    last_read: StreamId | None  # the member's read mark
    count: int  # messages of others after it, at most UNREAD_COUNT_MAX
    more: bool  # over UNREAD_COUNT_MAX: show "99+"
    mentions: int  # of those counted, the ones that mention the member

    def as_json(self) -> dict[str, object]:
        return {
            "last_read": None if self.last_read is None else str(self.last_read),
            "unread": self.count,
            "unread_more": self.more,
            "mentions": self.mentions,
        }


NOTHING = Unread(None, 0, False, 0)


async def unread_in(history: History, room: Room, user: Author, mark: StreamId | None) -> Unread:
    """The member's unread messages in the room after `mark` (None: none counted)."""
    if mark is None:
        return NOTHING
    count = mentioned = 0
    after = mark
    while True:
        page = await history.page(room.id, room.slug, after=after, limit=UNREAD_COUNT_MAX)
        for message in page.messages:
            if message.author.id == user.id:
                continue
            count += 1
            if mentions(message.body, user.username):
                mentioned += 1
            if count > UNREAD_COUNT_MAX:
                return Unread(mark, UNREAD_COUNT_MAX, True, mentioned)
        if not page.has_more or not page.messages:
            return Unread(mark, count, False, mentioned)
        after = page.messages[-1].id  # a page full of one's own messages: read on
