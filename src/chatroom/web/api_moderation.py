"""Moderation over HTTP: mute and remove in a room (its owner or an admin), ban from the
site, the users an admin sees, and the moderation log.

Every change is stored with its log entry first (SQL), then told to every node at once
(`Hub.restricted`, `Hub.banned`): the answer comes once the node that gave it enforces it.
Like every mutating endpoint, these refuse another site's page (`current_user`).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field

from chatroom.domain import frames
from chatroom.domain.frames import RoomEvent
from chatroom.domain.moderation import (
    DURATION_MAX_S,
    DURATION_MIN_S,
    MUTE,
    REASON_MAX,
    REMOVE,
    Restriction,
    check_duration,
    check_reason,
    check_room_moderator,
    check_room_target,
    until_text,
)
from chatroom.domain.refusals import Forbidden
from chatroom.domain.rooms import Room
from chatroom.domain.rules import LISTING_PAGE_DEFAULT, LISTING_PAGE_MAX, SEARCH_MAX, USERNAME
from chatroom.domain.users import User
from chatroom.rooms.moderation_log import LOG_PAGE_MAX, ModerationLog
from chatroom.rooms.restrictions import RestrictedUser, RoomRestrictions
from chatroom.web.dependencies import CurrentUser, State
from chatroom.web.schemas import Request, errors
from chatroom.web.state import AppState

router = APIRouter(tags=["moderation"])


class RestrictRequest(Request):
    username: str
    duration_s: int = Field(
        description=f"How long: {DURATION_MIN_S}-{DURATION_MAX_S} seconds.",
        json_schema_extra={"minimum": DURATION_MIN_S, "maximum": DURATION_MAX_S},
    )
    reason: str | None = Field(
        default=None,
        description=f"Why, for the moderation log: up to {REASON_MAX} characters.",
        json_schema_extra={"maxLength": REASON_MAX},
    )


class BanRequest(Request):
    username: str
    duration_s: int | None = Field(
        default=None,
        description=f"How long: {DURATION_MIN_S}-{DURATION_MAX_S} seconds; absent or null: "
        "until unbanned.",
        json_schema_extra={"minimum": DURATION_MIN_S, "maximum": DURATION_MAX_S},
    )
    reason: str | None = Field(
        default=None,
        description=f"Why, for the moderation log: up to {REASON_MAX} characters.",
        json_schema_extra={"maxLength": REASON_MAX},
    )


def _until(duration_s: int) -> int:
    return int(time.time() * 1000) + duration_s * 1000


async def _moderated_room(state: AppState, user: User, slug: str) -> Room:
    """The room `user` moderates; an admin reaches any room, private ones included."""
    room = await state.rooms.find(slug) if user.is_admin else None
    if room is None:
        room = await state.rooms.require_visible(user, slug)
    check_room_moderator(user, room)
    return room


def refuse_if_removed(state: AppState, room: Room, user: User) -> None:
    """403 `removed` while the user may not come back to the room (join, re-add)."""
    until = state.hub.restrictions.removed_until(room.id, user.id)
    if until is not None:
        raise Forbidden(
            "removed", f"{user.username} was removed from {room.slug} {until_text(until)}"
        )


async def refuse_removed_member(state: AppState, room: Room, username: object) -> None:
    """An owner adding back a member removed from their private room: 403 `removed`
    until the time is over (they know of the removal; no one else learns anything)."""
    if isinstance(username, str) and USERNAME.match(username):
        stored = await state.accounts.users.by_username(username)
        if stored is not None:
            refuse_if_removed(state, room, stored.user)


async def _restrict(
    state: AppState, user: User, slug: str, body: RestrictRequest, kind: str
) -> dict[str, object]:
    room = await _moderated_room(state, user, slug)
    duration = check_duration(body.duration_s)
    assert duration is not None
    reason = check_reason(body.reason)
    target = await state.accounts.find(body.username)
    check_room_target(user, room, target)
    restrictions = RoomRestrictions(state.engine)
    restriction = await restrictions.restrict(user, room, target, kind, _until(duration), reason)
    await state.hub.restricted(restriction)
    if kind == REMOVE:  # their room list drops it, on every tab
        view = room.as_json(online=0, joined=False, owned=False)
        await state.hub.tell_user(target.id, frames.room_event(RoomEvent.REMOVED, view))
    shown = RestrictedUser(target.author, kind, restriction.until_ms)
    return {"restriction": {"room": room.slug, **shown.as_json()}}


async def _lift(state: AppState, user: User, slug: str, username: str, kind: str) -> Response:
    room = await _moderated_room(state, user, slug)
    target = await state.accounts.find(username)
    if await RoomRestrictions(state.engine).lift(user, room, target, kind):
        await state.hub.restricted(Restriction(room.id, room.slug, target.id, kind, 0))
    return Response(status_code=204)


@router.get(
    "/api/rooms/{slug}/moderation",
    responses=errors(401, 403, 404, 409),
    summary="The mutes and removals in force in the room (its owner or an admin)",
)
async def room_restrictions(slug: str, user: CurrentUser, state: State) -> dict[str, object]:
    room = await _moderated_room(state, user, slug)
    found = await RoomRestrictions(state.engine).in_room(room)
    return {"restrictions": [r.as_json() for r in found]}


@router.post(
    "/api/rooms/{slug}/mutes",
    responses=errors(401, 403, 404, 409, 422),
    summary="Mute a user in the room for a time: they read, but cannot send or type there",
)
async def mute(
    slug: str, body: RestrictRequest, user: CurrentUser, state: State
) -> dict[str, object]:
    return await _restrict(state, user, slug, body, MUTE)


@router.delete(
    "/api/rooms/{slug}/mutes/{username}",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 404, 409),
    summary="Unmute a user in the room (the same 204 if they were not muted)",
)
async def unmute(slug: str, username: str, user: CurrentUser, state: State) -> Response:
    return await _lift(state, user, slug, username, MUTE)


@router.post(
    "/api/rooms/{slug}/removals",
    responses=errors(401, 403, 404, 409, 422),
    summary="Remove a user from the room for a time: their membership ends, their sockets "
    "leave it, and they cannot come back until then",
)
async def remove(
    slug: str, body: RestrictRequest, user: CurrentUser, state: State
) -> dict[str, object]:
    return await _restrict(state, user, slug, body, REMOVE)


@router.delete(
    "/api/rooms/{slug}/removals/{username}",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 404, 409),
    summary="Let a removed user come back before their time (the same 204 if not removed)",
)
async def unremove(slug: str, username: str, user: CurrentUser, state: State) -> Response:
    return await _lift(state, user, slug, username, REMOVE)


def _require_admin(user: User) -> None:
    if not user.is_admin:
        raise Forbidden("forbidden", "only an admin may do this")


@router.get(
    "/api/admin/users",
    responses=errors(401, 403, 422),
    summary="A page of every user, by username, with whether they are an admin or banned",
)
async def list_users(
    user: CurrentUser,
    state: State,
    cursor: Annotated[str | None, Query(description="The next_cursor of the page before.")] = None,
    limit: Annotated[int, Query(ge=1, le=LISTING_PAGE_MAX)] = LISTING_PAGE_DEFAULT,
    q: Annotated[
        str | None,
        Query(max_length=SEARCH_MAX, description="Only users whose names hold this."),
    ] = None,
) -> dict[str, object]:
    _require_admin(user)
    page = await state.accounts.bans.listing(after=cursor, limit=limit, search=q)
    listed = page.users
    return {
        "users": [entry.as_json() for entry in listed],
        "next_cursor": listed[-1].user.username if page.has_more else None,
    }


@router.post(
    "/api/admin/bans",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 404, 409, 422),
    summary="Ban a user from the site: no login, their sessions and tokens end and their "
    "sockets close at once, until unbanned or the time is over",
)
async def ban(body: BanRequest, user: CurrentUser, state: State) -> Response:
    _require_admin(user)
    duration = check_duration(body.duration_s, required=False)
    reason = check_reason(body.reason)
    target = await state.accounts.find(body.username)
    until = None if duration is None else _until(duration)
    await state.accounts.ban(user, target, until, reason)
    await state.hub.banned(target.id, f"you are banned {until_text(until)}")
    return Response(status_code=204)


@router.delete(
    "/api/admin/bans/{username}",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 404),
    summary="Lift a user's ban (the same 204 if they were not banned)",
)
async def unban(username: str, user: CurrentUser, state: State) -> Response:
    _require_admin(user)
    target = await state.accounts.find(username)
    await state.accounts.bans.unban(user, target, "")
    return Response(status_code=204)


@router.get(
    "/api/admin/moderation",
    responses=errors(401, 403, 422),
    summary="The moderation log, newest first: who did what to whom, where, why, until when",
)
async def moderation_log(
    user: CurrentUser,
    state: State,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="The next_cursor of the page before.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=LOG_PAGE_MAX)] = 50,
) -> dict[str, object]:
    _require_admin(user)
    page = await ModerationLog(state.engine).recent(before=before, limit=limit)
    entries = page.entries
    return {
        "entries": [entry.as_json() for entry in entries],
        "next_cursor": entries[-1].id if page.has_more else None,
    }
