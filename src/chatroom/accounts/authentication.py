"""Who is asking: the user behind a request's or a WebSocket's session cookie or token."""

from __future__ import annotations

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


async def authenticate(accounts: Accounts, conn: HTTPConnection) -> User | None:
    """The user of `conn` (an HTTP request or a WebSocket upgrade), or None.

    A bearer token wins over a cookie: a request that presents a wrong token is
    refused rather than quietly served as whoever the browser's cookie belongs to.
    """
    if "authorization" in conn.headers:
        secret = bearer_secret(conn)
        return None if secret is None else await accounts.user_for_token(secret)
    session_id = conn.cookies.get(SESSION_COOKIE)
    if session_id:
        return await accounts.user_for_session(session_id)
    return None
