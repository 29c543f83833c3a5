"""Accounts over HTTP: register, login, logout (here or everywhere), me, the password,
and API tokens.

Managing credentials (tokens, the password, every session) takes a browser session: a
bearer token is refused (`session_user`). Whatever ends sessions tells the hub, which
closes their sockets on every node at once.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Response
from starlette.requests import Request

from chatroom.accounts.sessions import SESSION_COOKIE
from chatroom.domain.rules import SQL_ID_MAX
from chatroom.settings import Settings
from chatroom.web.dependencies import (
    CurrentUser,
    SessionUser,
    State,
    client_address,
    require_site_origin,
)
from chatroom.web.origins import served_over_https
from chatroom.web.schemas import (
    ChangePasswordRequest,
    ChangeProfileRequest,
    CreateTokenRequest,
    LoginRequest,
    MeEnvelope,
    NewTokenEnvelope,
    RegisterRequest,
    TokenList,
    UserEnvelope,
    errors,
)

router = APIRouter(prefix="/api", tags=["accounts"])


def _set_session_cookie(
    response: Response, request: Request, settings: Settings, session_id: str
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=settings.session_absolute_s,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure or served_over_https(request, settings),
    )


def _signed_out(request: Request, settings: Settings) -> Response:
    """204, and the browser forgets its session cookie."""
    answer = Response(status_code=204)
    answer.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure or served_over_https(request, settings),
    )
    return answer


@router.post(
    "/register",
    status_code=201,
    response_model=UserEnvelope,
    responses=errors(403, 409, 422, 429),
    summary="Create an account (the very first one is an admin)",
)
async def register(body: RegisterRequest, request: Request, state: State) -> dict[str, object]:
    require_site_origin(request)
    user = await state.accounts.register(
        body.username, body.password, body.display_name, address=client_address(request)
    )
    return {"user": user.as_json()}


@router.post(
    "/login",
    response_model=UserEnvelope,
    responses=errors(401, 403, 422, 429),
    summary="Log in: sets a new session cookie",
)
async def login(
    body: LoginRequest, request: Request, response: Response, state: State
) -> dict[str, object]:
    require_site_origin(request)
    user, session_id = await state.accounts.login(
        body.username, body.password, address=client_address(request)
    )
    # A session the browser held before is ended: no session fixation.
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        await state.accounts.logout(previous)
    _set_session_cookie(response, request, state.settings, session_id)
    return {"user": user.as_json()}


@router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    responses=errors(403),
    summary="Log out: the session is revoked on the server",
)
async def logout(request: Request, state: State) -> Response:
    require_site_origin(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        user_id = await state.accounts.logout(session_id)
        if user_id is not None:  # its sockets close now, not at the next heartbeat
            await state.hub.signed_out(user_id)
    return _signed_out(request, state.settings)


@router.post(
    "/logout/all",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403),
    summary="Log out everywhere: every session of yours ends, this one included",
)
async def logout_everywhere(request: Request, user: SessionUser, state: State) -> Response:
    await state.accounts.logout_everywhere(user)
    await state.hub.signed_out(user.id)
    return _signed_out(request, state.settings)


@router.post(
    "/me/password",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 422, 429),
    summary="Change your password: every other session of yours ends",
)
async def change_password(
    body: ChangePasswordRequest, request: Request, user: SessionUser, state: State
) -> Response:
    await state.accounts.change_password(
        user,
        body.current_password,
        body.new_password,
        keep_session=request.cookies.get(SESSION_COOKIE, ""),
        address=client_address(request),
    )
    await state.hub.signed_out(user.id)
    return Response(status_code=204)


@router.get("/me", response_model=MeEnvelope, responses=errors(401), summary="Who am I")
async def me(user: CurrentUser, state: State) -> dict[str, object]:
    settings = state.settings
    limits = {
        "message_max_chars": settings.message_max_chars,
        "resend_window_s": settings.client_id_ttl_s,
    }
    return {"user": user.as_json(), "limits": limits}


@router.patch(
    "/me",
    response_model=UserEnvelope,
    responses=errors(401, 403, 422),
    summary="Change your display name (extension)",
)
async def change_profile(
    body: ChangeProfileRequest, user: SessionUser, state: State
) -> dict[str, object]:
    renamed = await state.accounts.change_display_name(user, body.display_name)
    return {"user": renamed.as_json()}


@router.post(
    "/tokens",
    status_code=201,
    response_model=NewTokenEnvelope,
    responses=errors(401, 403, 409, 422),
    tags=["tokens"],
    summary="Create an API token for a bot (the secret is shown only here)",
)
async def create_token(
    body: CreateTokenRequest, user: SessionUser, state: State
) -> dict[str, object]:
    token, secret = await state.accounts.create_token(user, body.name)
    return {"token": {**token.as_json(), "secret": secret}}


@router.get(
    "/tokens",
    response_model=TokenList,
    responses=errors(401, 403),
    tags=["tokens"],
    summary="Your API tokens (without their secrets)",
)
async def list_tokens(user: SessionUser, state: State) -> dict[str, object]:
    return {"tokens": [t.as_json() for t in await state.accounts.list_tokens(user)]}


@router.delete(
    "/tokens/{token_id}",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 404, 422),
    tags=["tokens"],
    summary="Revoke one of your API tokens",
)
async def delete_token(
    user: SessionUser, state: State, token_id: int = Path(ge=1, le=SQL_ID_MAX)
) -> Response:
    await state.accounts.delete_token(user, token_id)
    return Response(status_code=204)
