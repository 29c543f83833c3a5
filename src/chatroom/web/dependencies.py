"""What a route needs from its request: the node's state, the user, the client address."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from chatroom.accounts.authentication import authenticate
from chatroom.domain.refusals import Forbidden, NotAuthenticated
from chatroom.domain.users import User
from chatroom.web.origins import origin_allowed
from chatroom.web.state import AppState, app_state

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def chat_state(request: Request) -> AppState:
    return app_state(request)


State = Annotated[AppState, Depends(chat_state)]


def client_address(request: Request) -> str:
    """The client's address (a trusted proxy's X-Forwarded-For is applied by uvicorn);
    the throttles count an IPv6 address by its /64 (`accounts.throttle.address_block`)."""
    return request.client.host if request.client else "unknown"


def require_site_origin(request: Request) -> None:
    """Refuse a state-changing request sent by another site's page (a CSRF defence in
    depth: the SameSite=Lax cookie is the first)."""
    if request.method not in _SAFE_METHODS and not origin_allowed(
        request, app_state(request).settings
    ):
        raise Forbidden("forbidden_origin", "requests from another site are not accepted")


async def current_user(request: Request) -> User:
    state = app_state(request)
    user = await authenticate(state.accounts, request)
    if user is None:
        raise NotAuthenticated("not_authenticated", "log in first (or send a bearer token)")
    if "authorization" not in request.headers:
        require_site_origin(request)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def session_user(request: Request) -> User:
    """The user of a browser session: only a session (the cookie) manages credentials
    (API tokens, the password, every session). A bearer token is refused with 403, so a
    leaked token can neither make more tokens nor keep itself alive once revoked."""
    user = await current_user(request)
    if "authorization" in request.headers:
        raise Forbidden(
            "session_required", "log in to manage tokens, passwords and sessions (not a token)"
        )
    return user


SessionUser = Annotated[User, Depends(session_user)]
