"""The JSON shapes of the HTTP API, for validation of requests and for the OpenAPI docs.

Request models check types only; the rules (username pattern, lengths) are checked by
the services, so that one rule has one place and one error code. The patterns and
lengths shown here, read from the same rules, are for the docs and for generated clients.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from chatroom.domain.rules import (
    DISPLAY_NAME_MAX,
    DM_PEOPLE_MAX,
    PASSWORD_MAX,
    PASSWORD_MIN,
    SLUG,
    SLUG_RULE,
    TITLE_MAX,
    TOKEN_NAME_MAX,
    USERNAME,
    USERNAME_RULE,
)


def json_pattern(rule: re.Pattern[str]) -> str:
    """A rule's regex as JSON Schema writes it: there `$` (ECMA-262, not multiline) is the
    very end of the text, which Python's `$` is not (it allows a newline before it)."""
    return rule.pattern.removesuffix(r"\Z") + "$"


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RegisterRequest(Request):
    username: str = Field(
        description=f"{USERNAME_RULE}; unique whatever the case.",
        json_schema_extra={"pattern": json_pattern(USERNAME)},
    )
    password: str = Field(
        description=f"At least {PASSWORD_MIN} characters (at most {PASSWORD_MAX:,}).",
        json_schema_extra={"minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX},
    )
    display_name: str | None = Field(
        default=None,
        description=f"1-{DISPLAY_NAME_MAX} characters of any script, but no control or "
        "invisible formatting characters (bidi overrides, zero-width); default: the username.",
        json_schema_extra={"minLength": 1, "maxLength": DISPLAY_NAME_MAX},
    )


class LoginRequest(Request):
    username: str
    password: str


class ChangeProfileRequest(Request):
    display_name: str = Field(
        description=f"1-{DISPLAY_NAME_MAX} characters of any script, nothing invisible.",
        json_schema_extra={"minLength": 1, "maxLength": DISPLAY_NAME_MAX},
    )


class ChangePasswordRequest(Request):
    current_password: str
    new_password: str = Field(
        description=f"At least {PASSWORD_MIN} characters (at most {PASSWORD_MAX:,}).",
        json_schema_extra={"minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX},
    )


class CreateRoomRequest(Request):
    slug: str | None = Field(
        default=None,
        description=f"{SLUG_RULE}. Extension: optional; without it the title suggests one "
        "(`Team Standup` -> `team-standup`), or, for a title with no a-z/0-9 (Chinese, say), "
        "`room-` and a random base36 tail.",
        json_schema_extra={"pattern": json_pattern(SLUG)},
    )
    title: str = Field(
        description=f"1-{TITLE_MAX} characters.",
        json_schema_extra={"minLength": 1, "maxLength": TITLE_MAX},
    )
    private: bool = Field(default=False, description="Members only (the owner adds them).")


class StartConversationRequest(Request):
    usernames: list[str] = Field(
        description=f"The people to talk with (besides you; at most {DM_PEOPLE_MAX - 1}).",
        json_schema_extra={"minItems": 1, "maxItems": DM_PEOPLE_MAX - 1},
    )


class ReadRequest(Request):
    id: str = Field(description="The id of the last message you have read.")


class MemberRequest(Request):
    username: str = Field(
        description=f"{USERNAME_RULE}; the answer is the same whether it exists or not.",
        json_schema_extra={"pattern": json_pattern(USERNAME)},
    )


class CreateTokenRequest(Request):
    name: str = Field(
        description=f"1-{TOKEN_NAME_MAX} characters, to tell your tokens apart.",
        json_schema_extra={"minLength": 1, "maxLength": TOKEN_NAME_MAX},
    )


class ErrorDetail(BaseModel):
    code: str = Field(description="A stable, machine-readable error code.")
    message: str = Field(description="What went wrong, for a person.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class UserOut(BaseModel):
    """Your own record; everyone else's is an `Author` (without `is_admin`)."""

    id: int
    username: str
    display_name: str
    is_admin: bool = Field(default=False, description="Extension: may see /api/admin/status.")


class UserEnvelope(BaseModel):
    user: UserOut


class Limits(BaseModel):
    message_max_chars: int = Field(description="The longest message body, in characters.")
    resend_window_s: int = Field(
        description="How long after a send a resend with its client_id is still stored "
        "once (the server remembers client_ids this long): a client should not resend "
        "on its own a message first sent longer ago than this."
    )


class MeEnvelope(UserEnvelope):
    limits: Limits = Field(description="Extension: the server's input limits, for clients.")


class Author(BaseModel):
    id: int
    username: str
    display_name: str


class RoomOut(BaseModel):
    slug: str
    title: str
    private: bool
    online: int = Field(description="How many users are in the room now.")
    joined: bool = Field(description="Extension: you are a member of the room.")
    owned: bool = Field(description="Extension: you own the room (and manage its members).")
    kind: str = Field(
        default="room",
        description="Extension: `room`, or `dm` for a direct conversation (its slug "
        "starts with `dm.`; `members` are its participants).",
    )
    members: list[Author] | None = Field(
        default=None, description="Extension: a direct conversation's participants."
    )
    last_read: str | None = Field(
        default=None,
        description="Extension: the id of the last message you have read here (your "
        "read mark, on every device); null: none yet.",
    )
    unread: int = Field(
        default=0, description="Extension: messages of others after `last_read` (at most 99)."
    )
    unread_more: bool = Field(
        default=False, description="Extension: there are more than `unread` (show 99+)."
    )
    mentions: int = Field(
        default=0,
        description="Extension: of the unread messages, those that mention you "
        "(`@username` or `@room`).",
    )


class RoomEnvelope(BaseModel):
    room: RoomOut


class RoomList(BaseModel):
    rooms: list[RoomOut]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null: the last page."
    )


class ReactionOut(BaseModel):
    emoji: str
    count: int
    me: bool = Field(description="You reacted with this emoji.")


class ReplyOut(BaseModel):
    id: str
    user: Author
    body: str = Field(description="Its first 200 characters; empty when it was deleted.")
    deleted: bool


class MessageOut(BaseModel):
    id: str = Field(description="The Redis stream id, e.g. 1655188547271-0.")
    room: str
    user: Author
    body: str
    created_at: str = Field(description="UTC with milliseconds: the id's millisecond part.")
    client_id: str
    reply_to: str | None = Field(default=None, description="The id of the message replied to.")
    edited_at: str | None = Field(default=None, description="When it was last edited.")
    deleted: bool = Field(default=False, description='A tombstone: its body is "".')
    reactions: list[ReactionOut] = Field(
        default_factory=list, description="Per emoji, ordered by first reaction."
    )
    reply: ReplyOut | None = Field(
        default=None, description="A preview of the message replied to (none when deleted)."
    )


class MessagePage(BaseModel):
    messages: list[MessageOut] = Field(description="Oldest first.")
    has_more: bool = Field(
        description="More older (latest page, before=) or newer (after=) messages exist."
    )


class AroundPage(BaseModel):
    messages: list[MessageOut] = Field(
        description="Oldest first: the message asked for, older ones before it, newer after."
    )
    has_more: bool = Field(description="Older messages exist (ask with before=).")
    has_newer: bool = Field(description="Newer messages exist (ask with after=).")


class SearchRoom(BaseModel):
    slug: str
    title: str
    private: bool
    kind: str = Field(description="`room`, or `dm` for a direct conversation.")


class SearchHit(BaseModel):
    message: MessageOut
    room: SearchRoom
    highlights: list[tuple[int, int]] = Field(
        description="The [start, end) ranges of the body's matched words, in UTF-16 code "
        "units (as JavaScript's String.slice counts)."
    )


class SearchResults(BaseModel):
    results: list[SearchHit] = Field(description="Best match first, then newest first.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` (with the same q) for the next page."
    )


class OnlineList(BaseModel):
    online: list[Author]


class MemberList(BaseModel):
    members: list[Author] = Field(description="By username, whatever the case.")
    has_more: bool = Field(description="More members follow: ask again with after=.")


class TokenOut(BaseModel):
    id: int
    name: str
    created_at: str | None
    last_used_at: str | None


class NewTokenOut(TokenOut):
    secret: str = Field(description="Shown once: use it as `Authorization: Bearer <secret>`.")


class NewTokenEnvelope(BaseModel):
    token: NewTokenOut


class TokenList(BaseModel):
    tokens: list[TokenOut]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="`ready` or `unavailable`.")
    redis: str = Field(description="`ok` or why not.")
    database: str = Field(description="`ok` or why not.")
    persistence: dict[str, object] = Field(
        description="Whether Redis could lose acknowledged messages, and why."
    )


def errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    """The `responses=` of a route: its error statuses, all with the error body."""
    return {status: {"model": ErrorBody} for status in statuses}
