"""The JSON shapes of the HTTP API, for validation of requests and for the OpenAPI docs.

Request models check types only; the rules (username pattern, lengths) are checked by
the services, so that one rule has one place and one error code. The patterns and
lengths written here are for the docs and for generated clients.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from chatroom.domain.rules import DISPLAY_NAME_MAX, PASSWORD_MIN


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RegisterRequest(Request):
    username: str = Field(
        description="3-32 of A-Z, a-z, 0-9 and _; unique whatever the case.",
        json_schema_extra={"pattern": "^[A-Za-z0-9_]{3,32}$"},
    )
    password: str = Field(
        description=f"At least {PASSWORD_MIN} characters (at most 1,024).",
        json_schema_extra={"minLength": PASSWORD_MIN, "maxLength": 1024},
    )
    display_name: str | None = Field(
        default=None,
        description=f"1-{DISPLAY_NAME_MAX} characters; default: the username.",
        json_schema_extra={"minLength": 1, "maxLength": DISPLAY_NAME_MAX},
    )


class LoginRequest(Request):
    username: str
    password: str


class CreateRoomRequest(Request):
    slug: str = Field(
        description="2-32 of a-z, 0-9 and -, not starting with -.",
        json_schema_extra={"pattern": "^[a-z0-9][a-z0-9-]{1,31}$"},
    )
    title: str = Field(
        description="1-128 characters.", json_schema_extra={"minLength": 1, "maxLength": 128}
    )
    private: bool = Field(default=False, description="Members only (the owner adds them).")


class MemberRequest(Request):
    username: str


class CreateTokenRequest(Request):
    name: str = Field(
        description="1-64 characters, to tell your tokens apart.",
        json_schema_extra={"minLength": 1, "maxLength": 64},
    )


class ErrorDetail(BaseModel):
    code: str = Field(description="A stable, machine-readable error code.")
    message: str = Field(description="What went wrong, for a person.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    is_admin: bool = Field(default=False, description="Extension: may see /api/admin/status.")


class UserEnvelope(BaseModel):
    user: UserOut


class Limits(BaseModel):
    message_max_chars: int = Field(description="The longest message body, in characters.")


class MeEnvelope(UserEnvelope):
    limits: Limits = Field(description="Extension: the server's input limits, for clients.")


class RoomOut(BaseModel):
    slug: str
    title: str
    private: bool
    online: int = Field(description="How many users are in the room now.")
    joined: bool = Field(description="Extension: you are a member of the room.")
    owned: bool = Field(description="Extension: you own the room (and manage its members).")


class RoomEnvelope(BaseModel):
    room: RoomOut


class RoomList(BaseModel):
    rooms: list[RoomOut]


class Author(BaseModel):
    id: int
    username: str
    display_name: str


class MessageOut(BaseModel):
    id: str = Field(description="The Redis stream id, e.g. 1655188547271-0.")
    room: str
    user: Author
    body: str
    created_at: str = Field(description="UTC with milliseconds: the id's millisecond part.")
    client_id: str


class MessagePage(BaseModel):
    messages: list[MessageOut] = Field(description="Oldest first.")
    has_more: bool = Field(
        description="More older (latest page, before=) or newer (after=) messages exist."
    )


class OnlineList(BaseModel):
    online: list[Author]


class MemberList(BaseModel):
    members: list[UserOut]


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
