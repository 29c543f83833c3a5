"""The WebSocket endpoint `/ws`: the upgrade's checks, then the hub serves the socket.

The upgrade is refused (an HTTP answer, never an open socket) when the Origin is not one
of the site's (cross-site WebSocket hijacking: a page elsewhere cannot use the visitor's
cookie), when there is no Origin and no bearer token, and when there is no valid session
or token. After that the hub asks `RoomDirectory.visible` about a room: afresh for every
subscribe and at every heartbeat for each private room subscribed; a send or typing
frame reuses a yes for a few seconds (`chatroom.hub.session.ACCESS_CACHE_S`), and a
member's removal ends that at once (`Hub.access_lost`). The session or token is checked
again at every heartbeat, and at once on every node when a logout, a logout everywhere
or a password change ends sessions of the user (`Hub.signed_out`): once it has ended the
socket closes with 4501.

A refused upgrade is counted (`chatroom_ws_upgrades_refused{code}`) and logged at debug
level only: anyone can send them, and each would otherwise be a log line.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

from fastapi import APIRouter
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from chatroom.accounts.authentication import (
    authenticate,
    bearer_secret,
    credential_of,
    still_signed_in,
)
from chatroom.domain.events import Author
from chatroom.hub.hub import Hub
from chatroom.hub.subscription import RoomRef
from chatroom.hub.transport import SharedRun, SharedText, TransportClosed
from chatroom.outages import STORE_ERRORS
from chatroom.redis_client import connect
from chatroom.rooms.read_marks import ReadMarks
from chatroom.rooms.restrictions import RoomRestrictions
from chatroom.web.metrics import WS_UPGRADES_REFUSED
from chatroom.web.origins import origin_allowed
from chatroom.web.state import AppState, app_state
from chatroom.web.ws_protocol import SEND_WIRE, text_frame

log = logging.getLogger(__name__)

router = APIRouter()

NODE_HEADER = b"x-chatroom-node"
WS_PATH = "/ws"


class WebSocketTransport:
    """Starlette's WebSocket as the hub's Transport. Frames go out by the node's protocol's
    `send_wire` when it offers it (`ChatroomWebSocketProtocol`): straight to the socket,
    a room's live message encoded once for all its subscribers."""

    __slots__ = ("_send_wire", "_send_wire_now", "_websocket")

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        extension = websocket.scope.get("extensions", {}).get(SEND_WIRE)
        self._send_wire: Callable[[bytes], Awaitable[None]] | None = None
        self._send_wire_now: Callable[[bytes], bool] | None = None
        if extension:
            self._send_wire, self._send_wire_now = extension["send"], extension["send_now"]

    async def receive(self) -> str | bytes:
        try:
            message = await self._websocket.receive()
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise TransportClosed(str(exc)) from None
        if message["type"] == "websocket.disconnect":
            raise TransportClosed("the client left")
        text = message.get("text")
        if text is not None:
            return str(text)
        data = message.get("bytes")
        return bytes(data) if data is not None else b""

    async def send(self, frame: str) -> None:
        send_wire = self._send_wire
        try:
            if send_wire is None:
                await self._websocket.send_text(frame)
                return
            await send_wire(_wire(frame))
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise TransportClosed(str(exc)) from None

    def send_now(self, frame: str) -> bool:
        """Send at once if the socket takes it without waiting; False: use `send`."""
        send_wire_now = self._send_wire_now
        if send_wire_now is None:
            return False
        # A room's live message, already framed by its first subscriber: the fan-out's
        # case, once per subscriber, so without a call to `_wire`.
        wire = frame.wire if type(frame) is SharedText else None
        return send_wire_now(wire if wire is not None else _wire(frame))

    def send_run_now(self, run: SharedRun) -> bool:
        """Send a run of shared frames at once, in one write, if the socket takes it
        without waiting; False: offer them one by one."""
        send_wire_now = self._send_wire_now
        if send_wire_now is None:
            return False
        wire = run.wire
        if wire is None:
            wire = run.wire = b"".join([_wire(frame) for frame in run.frames])
        return send_wire_now(wire)

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self._websocket.close(code, reason)


def _wire(frame: str) -> bytes:
    """The frame as a WebSocket text frame; a shared frame is framed once for all."""
    if not isinstance(frame, SharedText):
        return text_frame(frame.encode())
    wire = frame.wire
    if wire is None:
        wire = frame.wire = text_frame(frame.encode())
    return wire


async def _refuse(websocket: WebSocket, status: int, code: str, message: str) -> None:
    WS_UPGRADES_REFUSED.labels(code).inc()
    log.debug("refused a WebSocket upgrade: %d %s", status, code)
    await websocket.send_denial_response(
        JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
    )


async def websocket_endpoint(websocket: WebSocket) -> None:
    state = app_state(websocket)
    if not origin_allowed(websocket, state.settings):
        await _refuse(websocket, 403, "origin_not_allowed", "this origin may not open /ws")
        return
    if websocket.headers.get("origin") is None and bearer_secret(websocket) is None:
        await _refuse(
            websocket, 403, "origin_required", "a browser must send its Origin; bots a token"
        )
        return
    try:
        user = await authenticate(state.accounts, websocket)
    except STORE_ERRORS as exc:
        log.warning("cannot authenticate a WebSocket: %s", exc)
        await _refuse(websocket, 503, "unavailable", "the server cannot check sessions now")
        return
    if user is None:
        await _refuse(websocket, 401, "not_authenticated", "log in first (or send a token)")
        return
    # Which node serves the socket: behind a proxy or among `serve --workers N`, the
    # operator (and a test) can tell; a random id, nothing else about the node.
    await websocket.accept(headers=[(NODE_HEADER, state.hub.node_id.encode())])

    async def access(_author: Author, slug: str) -> RoomRef | None:
        room = await state.rooms.visible(user, slug)
        if room is None:
            return None
        moderator = user.is_admin or room.owner_id == user.id
        return RoomRef(room.id, room.slug, room.is_private, moderator)

    sign_in = credential_of(websocket)
    await state.hub.serve(WebSocketTransport(websocket), user.author, access, sign_in)


# A plain Starlette route, not FastAPI's `@router.websocket`: the endpoint needs no
# dependency injection, and FastAPI's keeps several kilobytes per open socket. The node's
# app (`ws_route.ChatroomApp`) serves /ws before any route is looked at, past the
# middleware: the route stays for an app that mounts this router without it.
router.add_websocket_route(WS_PATH, websocket_endpoint)


@asynccontextmanager
async def running_hub(state: AppState) -> AsyncIterator[Hub]:
    """The node's hub, started; stopped (sockets closed with 1001) on exit."""
    blocking = connect(state.redis_url, blocking=True)
    hub = Hub(
        settings=state.settings,
        redis=state.redis,
        blocking_redis=blocking,
        writer=state.writer,
        history=state.history,
        read_marks=ReadMarks(state.engine, flush_s=state.settings.read_mark_flush_s),
        restrictions=RoomRestrictions(state.engine).in_force,
        sign_in_check=partial(still_signed_in, state.accounts),
        membership_check=state.rooms.memberships,
    )
    try:
        await hub.start()
        yield hub
    finally:
        await hub.stop()
        await blocking.aclose()
