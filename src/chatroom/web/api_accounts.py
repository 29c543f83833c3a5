"""Accounts over HTTP: register, login, logout, me, and API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response
from starlette.requests import Request

from chatroom.accounts.sessions import SESSION_COOKIE
from chatroom.domain.rules import SQL_ID_MAX
from chatroom.web.dependencies import CurrentUser, State, client_address, require_site_origin
from chatroom.web.schemas import (
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
    settings = state.settings
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=settings.session_absolute_s,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )
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
        await state.accounts.logout(session_id)
    answer = Response(status_code=204)
    answer.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=state.settings.cookie_secure,
    )
    return answer


@router.get("/me", response_model=MeEnvelope, responses=errors(401), summary="Who am I")
async def me(user: CurrentUser, state: State) -> dict[str, object]:
    limits = {"message_max_chars": state.settings.message_max_chars}
    return {"user": user.as_json(), "limits": limits}


@router.post(
    "/tokens",
    status_code=201,
    response_model=NewTokenEnvelope,
    responses=errors(401, 403, 409, 422),
    tags=["tokens"],
    summary="Create an API token for a bot (the secret is shown only here)",
)
async def create_token(
    body: CreateTokenRequest, user: CurrentUser, state: State
) -> dict[str, object]:
    token, secret = await state.accounts.create_token(user, body.name)
    return {"token": {**token.as_json(), "secret": secret}}


@router.get(
    "/tokens",
    response_model=TokenList,
    responses=errors(401),
    tags=["tokens"],
    summary="Your API tokens (without their secrets)",
)
async def list_tokens(user: CurrentUser, state: State) -> dict[str, object]:
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
    user: CurrentUser, state: State, token_id: int = Path(ge=1, le=SQL_ID_MAX)
) -> Response:
    await state.accounts.delete_token(user, token_id)
    return Response(status_code=204)
