"""Message search over HTTP: GET /api/search.

Authorised in the SQL query itself (store/search.py): only messages of public rooms and of
the private rooms and direct conversations the caller is a member of are ever found. A
`room=` the caller cannot see answers 404 `room_not_found`, as everywhere. Each search
counts against the caller's allowance per minute (`searches_per_minute`), before SQL is
asked: a full-text query costs more than a history page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chatroom.accounts.throttle import Limit
from chatroom.domain.refusals import Throttled
from chatroom.domain.search_query import (
    PAGE_DEFAULT,
    PAGE_MAX,
    QUERY_MAX_CHARS,
    Cursor,
    parse_query,
)
from chatroom.domain.users import User
from chatroom.store.search import Hit
from chatroom.web.dependencies import CurrentUser, State
from chatroom.web.schemas import SearchResults, errors
from chatroom.web.state import AppState

router = APIRouter(prefix="/api/search", tags=["search"])


async def _count_search(state: AppState, user: User) -> None:
    limit = Limit("search", str(user.id), state.settings.searches_per_minute, 60)
    wait = await state.accounts.throttle.hit([limit])
    if wait:
        raise Throttled("too many searches; try again shortly", wait, code="search_throttled")


def _hit_json(hit: Hit) -> dict[str, object]:
    room = hit.room
    return {
        "message": hit.message.as_json(),
        "room": {
            "slug": room.slug,
            "title": room.title,
            "private": room.is_private,
            "kind": "dm" if room.is_dm else "room",
        },
        "highlights": [list(span) for span in hit.highlights],
    }


@router.get(
    "",
    response_model=SearchResults,
    responses=errors(401, 404, 422, 429),
    summary="Search the archived messages you can see: every word, as the start of a word",
)
async def search(
    user: CurrentUser,
    state: State,
    q: Annotated[
        str,
        Query(
            max_length=QUERY_MAX_CHARS,
            description="Words to find (all of them; each as the start of a word).",
        ),
    ],
    room: Annotated[str | None, Query(description="Only in this room (its slug).")] = None,
    cursor: Annotated[
        str | None, Query(max_length=100, description="The next_cursor of the page before.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="How many results.")] = (
        PAGE_DEFAULT
    ),
) -> dict[str, object]:
    query = parse_query(q)
    after = None if cursor is None else Cursor.decode(cursor)
    room_id = None if room is None else (await state.rooms.require_visible(user, room)).id
    await _count_search(state, user)
    found = await state.search.search(user.id, query, room_id=room_id, cursor=after, limit=limit)
    return {
        "results": [_hit_json(hit) for hit in found.hits],
        "next_cursor": None if found.next_cursor is None else found.next_cursor.encode(),
    }
