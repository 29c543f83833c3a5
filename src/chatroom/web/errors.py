"""Every error answer is `{"error": {"code", "message"}}`, FastAPI's own ones included.

Refusals from the services map to their status here; request validation becomes 422
with the field's code (`invalid_username`, ...); a routing 404 of a browser page goes
to the web client (history-mode routes); anything unexpected is a 500 with no detail.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLPoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chatroom.domain.refusals import (
    Conflict,
    Forbidden,
    NotAuthenticated,
    NotFound,
    Refused,
    Throttled,
)
from chatroom.domain.rules import RuleError
from chatroom.web.body_limit import BodyRefused

log = logging.getLogger(__name__)

_STATUS: list[tuple[type[Refused], int]] = [
    (NotAuthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (Throttled, 429),
]
_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
}

ClientPage = Callable[[Request], Awaitable[Response | None]]


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _refused(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    status = next((s for kind, s in _STATUS if isinstance(exc, kind)), 400)
    headers = None
    if isinstance(exc, Throttled):
        headers = {"Retry-After": str(max(1, exc.retry_after_s))}
    return error_response(status, exc.code, exc.message, headers)


def _rule(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RuleError)
    return error_response(422, exc.code, exc.message)


def _field(loc: tuple[Any, ...]) -> str | None:
    names = [part for part in loc[1:] if isinstance(part, str)]
    return names[0] if names else None


def _validation(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = tuple(first.get("loc", ()))
    field = _field(loc)
    if first.get("type") == "json_invalid":
        return error_response(422, "invalid_json", "the request body is not valid JSON")
    if field is None:
        return error_response(422, "invalid_request", str(first.get("msg", "invalid request")))
    message = str(first.get("msg", "is invalid"))
    return error_response(422, f"invalid_{field}", f"{field}: {message}")


def install_error_handlers(app: FastAPI, client_page: ClientPage) -> None:
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404 and request.method in ("GET", "HEAD"):
            page = await client_page(request)
            if page is not None:
                return page
        code = exc.code if isinstance(exc, BodyRefused) else _HTTP_CODES.get(exc.status_code)
        code = code or f"http_{exc.status_code}"
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, dict(exc.headers or {}) or None)

    async def unavailable(request: Request, exc: Exception) -> Response:
        # Redis or SQL is down or refusing: say so, with the cause for the operator only.
        log.warning("%s %s: backend unavailable: %s", request.method, request.url.path, exc)
        return error_response(
            503,
            "unavailable",
            "the server cannot reach its storage; try again soon",
            {"Retry-After": "5"},
        )

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal_error", "the server failed; it has been logged")

    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(RuleError, _rule)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RedisError, unavailable)
    app.add_exception_handler(DBAPIError, unavailable)
    # Every pooled SQL connection busy past the pool's wait (a reload storm): an answer
    # to try again, not a 500 with a stack trace.
    app.add_exception_handler(SQLPoolTimeout, unavailable)
    app.add_exception_handler(Exception, unexpected)
