"""Rooms over HTTP: list, create, join, leave, members, who is online, and history.

A private room the caller is not a member of answers 404 on every path, exactly as a
room that does not exist: its name is not confirmed to outsiders. Adding or removing a
member answers the same whether the username exists or not, at a limited rate.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from chatroom.accounts.throttle import Limit
from chatroom.domain import frames
from chatroom.domain.frames import RoomEvent
from chatroom.domain.refusals import NotFound, Throttled, room_not_found
from chatroom.domain.rules import LISTING_PAGE_DEFAULT, LISTING_PAGE_MAX, SEARCH_MAX, RuleError
from chatroom.domain.stream_ids import InvalidStreamId, StreamId
from chatroom.domain.users import User
from chatroom.history import PAGE_MAX
from chatroom.hub import presence
from chatroom.hub.subscription import RoomRef
from chatroom.web.api_moderation import refuse_if_removed, refuse_removed_member
from chatroom.web.dependencies import CurrentUser, State
from chatroom.web.room_views import room_view, room_views
from chatroom.web.schemas import (
    AroundPage,
    CreateRoomRequest,
    MemberList,
    MemberRequest,
    MessagePage,
    OnlineList,
    ReadRequest,
    RoomEnvelope,
    RoomList,
    errors,
)
from chatroom.web.state import AppState

router = APIRouter(prefix="/api/rooms", tags=["rooms"])

PAGE_DEFAULT = 50
MEMBERS_PAGE_DEFAULT = 100
MEMBERS_PAGE_MAX = 500


def parse_message_id(text: str, name: str) -> StreamId:
    """A message id from a query parameter, or a 422 `invalid_id`."""
    try:
        return StreamId.parse(text)  # refuses parts past SQL's range: no message has one
    except InvalidStreamId:
        raise RuleError("invalid_id", f"{name} must be a message id like 1655188547271-0") from None


@router.get(
    "",
    response_model=RoomList,
    responses=errors(401, 422),
    summary="A page of the rooms you can see (public, and private ones you are in), by slug",
)
async def list_rooms(
    user: CurrentUser,
    state: State,
    cursor: Annotated[str | None, Query(description="The next_cursor of the page before.")] = None,
    limit: Annotated[
        int, Query(ge=1, le=LISTING_PAGE_MAX, description="How many rooms.")
    ] = LISTING_PAGE_DEFAULT,
    q: Annotated[
        str | None,
        Query(max_length=SEARCH_MAX, description="Only rooms whose slug or title holds this."),
    ] = None,
    joined: Annotated[
        bool, Query(description="Only the rooms you are a member of (the sidebar).")
    ] = False,
) -> dict[str, object]:
    page = await state.rooms.listing(user, after=cursor, limit=limit, search=q, joined_only=joined)
    listed = page.rooms
    return {
        "rooms": await room_views(state, user, [(e.room, e.joined) for e in listed]),
        "next_cursor": listed[-1].room.slug if page.has_more else None,
    }


async def _count_room_creation(state: AppState, user: User) -> None:
    """Each attempt counts against the user's hourly allowance before SQL is asked,
    refused or not: creation is also the one question that tells whether a name is taken."""
    if user.is_admin:
        return
    limit = Limit("room-create", str(user.id), state.settings.room_creations_per_hour, 3600)
    wait = await state.accounts.throttle.hit([limit])
    if wait:
        raise Throttled(
            "too many rooms created; try again later", wait, code="room_creation_throttled"
        )


@router.post(
    "",
    status_code=201,
    response_model=RoomEnvelope,
    responses=errors(401, 403, 409, 422, 429),
    summary="Create a room; you are its owner and first member",
)
async def create_room(
    body: CreateRoomRequest, user: CurrentUser, state: State
) -> dict[str, object]:
    await _count_room_creation(state, user)
    quota = None if user.is_admin else state.settings.rooms_per_user_max
    room = await state.rooms.create(user, body.slug, body.title, body.private, max_owned=quota)
    view = await room_view(state, user, room, joined=True)
    await state.hub.tell_user(user.id, frames.room_event(RoomEvent.JOINED, view))
    if not room.is_private:  # everyone's room list shows it at once
        public = room.as_json(online=0, joined=False, owned=False)
        await state.hub.tell_user(None, frames.room_event(RoomEvent.CREATED, public))
    return {"room": view}


@router.get("/{slug}", response_model=RoomEnvelope, responses=errors(401, 404), summary="One room")
async def get_room(slug: str, user: CurrentUser, state: State) -> dict[str, object]:
    room = await state.rooms.require_visible(user, slug)
    joined = await state.rooms.is_member(room, user)
    return {"room": await room_view(state, user, room, joined=joined)}


@router.post(
    "/{slug}/join",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 404),
    summary="Join a public room (extension)",
)
async def join_room(slug: str, user: CurrentUser, state: State) -> Response:
    room = await state.rooms.require_visible(user, slug)
    refuse_if_removed(state, room, user)
    if await state.rooms.join(user, room):
        view = await room_view(state, user, room, joined=True)
        await state.hub.tell_user(user.id, frames.room_event(RoomEvent.JOINED, view))
    return Response(status_code=204)


@router.post(
    "/{slug}/leave",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 404, 409),
    summary="Leave a room (extension); leaving a private room ends your access to it",
)
async def leave_room(slug: str, user: CurrentUser, state: State) -> Response:
    room = await state.rooms.require_visible(user, slug)
    await state.rooms.leave(user, room)
    # Their other tabs and devices drop it (told first: the `forbidden` that ends a
    # private room's subscriptions then finds it gone, and says nothing).
    view = room.as_json(online=0, joined=False, owned=room.owner_id == user.id)
    await state.hub.tell_user(user.id, frames.room_event(RoomEvent.LEFT, view))
    if room.is_private:
        await state.hub.access_lost(room.slug, user.id)
    return Response(status_code=204)


@router.get(
    "/{slug}/members",
    response_model=MemberList,
    responses=errors(401, 404, 422),
    summary="A page of the room's members, by username (extension)",
)
async def list_members(
    slug: str,
    user: CurrentUser,
    state: State,
    after: Annotated[
        str | None, Query(description="Members after this username (exclusive).")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MEMBERS_PAGE_MAX, description="How many members.")
    ] = MEMBERS_PAGE_DEFAULT,
) -> dict[str, object]:
    room = await state.rooms.require_visible(user, slug)
    page = await state.rooms.members(room, after=after, limit=limit)
    return {"members": [m.as_json() for m in page.members], "has_more": page.has_more}


async def _count_member_change(state: AppState, user: User) -> None:
    """Each add or remove counts against the owner's hourly allowance, before SQL is
    asked: the same answer for every username would still let a script try them all."""
    limit = Limit("member-change", str(user.id), state.settings.member_changes_per_hour, 3600)
    wait = await state.accounts.throttle.hit([limit])
    if wait:
        raise Throttled("too many member changes; try again later", wait)


@router.post(
    "/{slug}/members",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 404, 409, 422, 429),
    summary="Add a member to your private room (owner only); the same 204 for a username "
    "that does not exist",
)
async def add_member(slug: str, body: MemberRequest, user: CurrentUser, state: State) -> Response:
    room = await state.rooms.require_visible(user, slug)
    await _count_member_change(state, user)
    if room.owner_id == user.id:
        await refuse_removed_member(state, room, body.username)
    added = await state.rooms.add_member(user, room, body.username)
    if added is not None:  # the new member's room list shows it at once
        view = room.as_json(online=0, joined=True, owned=False)
        await state.hub.tell_user(added, frames.room_event(RoomEvent.ADDED, view))
    return Response(status_code=204)


@router.delete(
    "/{slug}/members/{username}",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 404, 409, 422, 429),
    summary="Remove a member from your private room (owner only); the same 204 for a "
    "username that does not exist",
)
async def remove_member(slug: str, username: str, user: CurrentUser, state: State) -> Response:
    room = await state.rooms.require_visible(user, slug)
    await _count_member_change(state, user)
    removed = await state.rooms.remove_member(user, room, username)
    if removed is not None:  # they are told, and their sockets lose it now, everywhere
        view = room.as_json(online=0, joined=False, owned=False)
        await state.hub.tell_user(removed, frames.room_event(RoomEvent.REMOVED, view))
        await state.hub.access_lost(room.slug, removed)
    return Response(status_code=204)


@router.post(
    "/{slug}/read",
    status_code=204,
    response_class=Response,
    responses=errors(401, 404, 422),
    summary="Set your read mark in the room: the id of the last message you have read "
    "(extension; the mark only moves forward, and your other tabs and devices hear of it)",
)
async def mark_read(slug: str, body: ReadRequest, user: CurrentUser, state: State) -> Response:
    room = await state.rooms.require_visible(user, slug)
    mark = parse_message_id(body.id, "id")
    await state.hub.read(user.author, RoomRef(room.id, room.slug, room.is_private), mark)
    return Response(status_code=204)


@router.get(
    "/{slug}/online",
    response_model=OnlineList,
    responses=errors(401, 404),
    summary="Who is in the room now",
)
async def online(slug: str, user: CurrentUser, state: State) -> dict[str, object]:
    room = await state.rooms.require_visible(user, slug)
    return {"online": [u.as_json() for u in await presence.online_users(state.redis, room.slug)]}


@router.get(
    "/{slug}/messages",
    response_model=AroundPage | MessagePage,
    responses=errors(401, 404, 422),
    summary="A page of the room's history, oldest first; around= the page around one "
    "message (a permalink)",
)
async def messages(
    slug: str,
    user: CurrentUser,
    state: State,
    before: Annotated[
        str | None, Query(description="Messages older than this id (exclusive).")
    ] = None,
    after: Annotated[
        str | None, Query(description="Messages newer than this id (exclusive).")
    ] = None,
    around: Annotated[
        str | None,
        Query(
            description="Extension: this message and those on either side of it (about "
            "half the limit each); 404 `message_not_found` when the room has no such message."
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="How many messages.")] = (
        PAGE_DEFAULT
    ),
) -> dict[str, object]:
    room = await state.rooms.visible(user, slug)
    if room is None:
        raise room_not_found(slug)
    if sum(bound is not None for bound in (before, after, around)) > 1:
        raise RuleError("invalid_query", "give one of before, after and around")
    if around is not None:
        target = parse_message_id(around, "around")
        near = await state.history.around(room.id, room.slug, target, limit=limit)
        if not near.found:
            raise NotFound("message_not_found", f"the room has no message {around}")
        shown = await state.history.current(room.id, room.slug, near.messages, user.id)
        return {
            "messages": [m.as_json() for m in shown],
            "has_more": near.has_older,
            "has_newer": near.has_newer,
        }
    page = await state.history.page(
        room.id,
        room.slug,
        before=None if before is None else parse_message_id(before, "before"),
        after=None if after is None else parse_message_id(after, "after"),
        limit=limit,
    )
    shown = await state.history.current(room.id, room.slug, page.messages, user.id)
    return {"messages": [m.as_json() for m in shown], "has_more": page.has_more}
