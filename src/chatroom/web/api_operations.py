"""For the operator: liveness, readiness, Prometheus metrics and the admin status."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from chatroom.domain.refusals import Forbidden, NotAuthenticated
from chatroom.outages import first_line
from chatroom.status import collect_status
from chatroom.streams.persistence import check_persistence
from chatroom.web.dependencies import CurrentUser, State
from chatroom.web.schemas import Health, Readiness, errors

router = APIRouter(tags=["operations"])

CHECK_TIMEOUT_S = 2.0


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _probe(check: Any) -> str:
    try:
        await asyncio.wait_for(check, CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:
        return f"{type(exc).__name__}: {first_line(exc)}"
    return "ok"


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Redis or SQL unreachable."}},
    summary="Readiness: Redis and SQL reachable; whether Redis persistence is at risk",
)
async def readyz(state: State, response: Response) -> dict[str, Any]:
    async def sql_answers() -> None:
        async with state.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    redis_state, database_state = await asyncio.gather(
        _probe(state.redis.ping()), _probe(sql_answers())
    )
    persistence: dict[str, Any] = state.persistence.as_json()
    if redis_state == "ok":
        try:
            report = await asyncio.wait_for(
                check_persistence(state.redis, state.settings.durability), CHECK_TIMEOUT_S
            )
            persistence = report.as_json()
        except Exception as exc:
            persistence = {**persistence, "problems": [f"cannot check now: {exc}"]}
    ready = redis_state == "ok" and database_state == "ok"
    if not ready:
        response.status_code = 503
    return {
        "status": "ready" if ready else "unavailable",
        "redis": redis_state,
        "database": database_state,
        "persistence": persistence,
    }


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text."},
        **errors(401),
    },
    summary="Prometheus metrics (with `metrics_token` set: send it as a bearer token)",
)
async def metrics(request: Request, state: State) -> Response:
    token = state.settings.metrics_token
    if token is not None and not _bearer_is(request, token):
        raise NotAuthenticated(
            "metrics_token_required", "send the metrics token: Authorization: Bearer <token>"
        )
    status = state.archiver_status_metrics
    if status is not None:
        await status.refresh()
    registry = REGISTRY if state.worker_metrics is None else state.worker_metrics.registry(status)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _bearer_is(request: Request, token: str) -> bool:
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        secret.strip().encode(), token.encode()
    )


@router.get(
    "/api/admin/status",
    response_model=dict[str, Any],
    responses=errors(401, 403),
    tags=["admin"],
    summary="Backlog, pending, archived and dead letters per room (`chatroom status --json`)",
)
async def admin_status(user: CurrentUser, state: State) -> dict[str, Any]:
    if not user.is_admin:
        raise Forbidden("forbidden", "only an admin may see the server status")
    found = await collect_status(state.redis, state.engine, state.settings.durability)
    return found.as_json()
