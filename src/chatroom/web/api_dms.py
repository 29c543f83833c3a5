"""Direct conversations over HTTP: start one (or find it again) from usernames.

A conversation is a private room (rooms/direct.py): its history, its socket frames and its
read state are a room's, under its `dm.` slug. Its people see it appear at once (a `room`
frame, `added`, on every node).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from chatroom.domain import frames
from chatroom.domain.frames import RoomEvent
from chatroom.web.dependencies import CurrentUser, State
from chatroom.web.room_views import room_view
from chatroom.web.schemas import RoomEnvelope, StartConversationRequest, errors

router = APIRouter(prefix="/api/dms", tags=["direct messages"])


@router.post(
    "",
    status_code=201,
    response_model=RoomEnvelope,
    responses={**errors(401, 404, 422), 200: {"model": RoomEnvelope}},
    summary="Start a direct conversation with these users, or find it again (extension): "
    "201 when started, 200 when it existed",
)
async def start_conversation(
    body: StartConversationRequest, user: CurrentUser, state: State
) -> JSONResponse:
    conversation = await state.dms.start(user, body.usernames)
    room = conversation.room
    view = await room_view(state, user, room, joined=True)
    if conversation.started:  # its people's room lists show it at once, on every node
        shared = {**view, "owned": False, "unread": 0, "unread_more": False, "mentions": 0}
        for person in conversation.people:
            await state.hub.tell_user(person, frames.room_event(RoomEvent.ADDED, shared))
    return JSONResponse({"room": view}, status_code=201 if conversation.started else 200)
