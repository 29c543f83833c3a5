"""Who may see a room: the one question every HTTP route and WebSocket frame asks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatroom.domain.rooms import Room
from chatroom.domain.users import User

if TYPE_CHECKING:
    from chatroom.web.state import AppState


async def visible_room(state: AppState, user: User, slug: str) -> Room | None:
    """The room if `user` may read and write it; None for an unknown room and for a
    private room `user` is not a member of (the two must look the same from outside)."""
    return await state.rooms.visible(user, slug)
