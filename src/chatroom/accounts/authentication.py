"""Who is asking: the user behind a request's or a WebSocket's session cookie or token."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from starlette.requests import HTTPConnection

from chatroom.accounts.service import Accounts
from chatroom.accounts.sessions import SESSION_COOKIE
from chatroom.domain.users import User


def bearer_secret(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization")
    if header is None:
        return None
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


@dataclass(frozen=True, slots=True)
class Credential:
    """What a request or a WebSocket upgrade signs in with: a session cookie or a token."""

    kind: Literal["session", "token"]
    secret: str = field(repr=False)


def credential_of(conn: HTTPConnection) -> Credential | None:
    """The credential `conn` presents, or None (none, or a malformed Authorization).

    A bearer token wins over a cookie: a request that presents a wrong token is
    refused rather than quietly served as whoever the browser's cookie belongs to.
    """
    if "authorization" in conn.headers:
        secret = bearer_secret(conn)
        return None if secret is None else Credential("token", secret)
    session_id = conn.cookies.get(SESSION_COOKIE)
    return Credential("session", session_id) if session_id else None


async def authenticate(accounts: Accounts, conn: HTTPConnection) -> User | None:
    """The user of `conn` (an HTTP request or a WebSocket upgrade), or None."""
    credential = credential_of(conn)
    if credential is None:
        return None
    if credential.kind == "token":
        return await accounts.user_for_token(credential.secret)
    return await accounts.user_for_session(credential.secret)


async def still_signed_in(
    accounts: Accounts, credentials: Collection[Credential]
) -> set[Credential]:
    """Those of the credentials still valid (a session's idle expiry extended, as by
    `authenticate`): a node's heartbeat checks all its sockets in two bulk lookups (Redis
    for sessions, SQL for tokens), not one per socket."""
    sessions = {c.secret for c in credentials if c.kind == "session"}
    tokens = {c.secret for c in credentials if c.kind == "token"}
    live = {
        "session": await accounts.sessions.live(sessions) if sessions else set(),
        "token": await accounts.tokens.live(tokens) if tokens else set(),
    }
    return {c for c in credentials if c.secret in live[c.kind]}
