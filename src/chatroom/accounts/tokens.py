"""API tokens for bots: `Authorization: Bearer <secret>`.

The secret is shown once, at creation; SQL keeps only its SHA-256, so a copy of the
database holds no usable token. A secret carries 256 random bits: a plain hash (not a
slow one) is enough, and lets a token be found by its hash in one indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.accounts.users_table import inserted_id, now_utc
from chatroom.domain.refusals import Conflict, NotFound
from chatroom.domain.rules import TOKEN_NAME_MAX, clean_label
from chatroom.domain.stream_ids import iso_millis
from chatroom.domain.users import User
from chatroom.store.tables import api_tokens, users

SECRET_PREFIX = "chr_"  # noqa: S105 (a marker for secret scanners, not a secret)
TOKENS_PER_USER_MAX = 100
# Writing last_used_at on every request would turn each read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=5)
BULK_CHUNK = 500  # secrets per query of a bulk check (`live`)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _plausible(secret: str) -> bool:
    return secret.startswith(SECRET_PREFIX) and len(secret) <= 100


def _stale(last_used_at: datetime | None, now: datetime) -> bool:
    """Whether a token's last_used_at is to be written again (`_LAST_USED_RESOLUTION`)."""
    return last_used_at is None or now - last_used_at > _LAST_USED_RESOLUTION


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQL keeps UTC without a zone
        moment = moment.replace(tzinfo=UTC)
    return iso_millis(int(moment.timestamp() * 1000))


def check_token_name(name: object) -> str:
    return clean_label(name, field="name", max_chars=TOKEN_NAME_MAX)


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created_at": _iso(self.created_at),
            "last_used_at": _iso(self.last_used_at),
        }


class ApiTokens:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, user: User, name: object) -> tuple[ApiToken, str]:
        """A new token; returns it with its secret, which is never available again."""
        checked = check_token_name(name)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        created = now_utc()
        async with self._engine.begin() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(api_tokens)
                .where(api_tokens.c.user_id == user.id)
            )
            if (count or 0) >= TOKENS_PER_USER_MAX:
                raise Conflict("too_many_tokens", f"at most {TOKENS_PER_USER_MAX} tokens per user")
            result = await conn.execute(
                api_tokens.insert().values(
                    user_id=user.id,
                    name=checked,
                    secret_hash=_digest(secret),
                    created_at=created,
                )
            )
            token_id = inserted_id(result)
        return ApiToken(token_id, checked, created, None), secret

    async def list(self, user: User) -> list[ApiToken]:
        query = (
            sa.select(
                api_tokens.c.id,
                api_tokens.c.name,
                api_tokens.c.created_at,
                api_tokens.c.last_used_at,
            )
            .where(api_tokens.c.user_id == user.id)
            .order_by(api_tokens.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [ApiToken(int(r.id), r.name, r.created_at, r.last_used_at) for r in rows]

    async def delete(self, user: User, token_id: int) -> None:
        """Revoke one of the user's tokens; another user's token is as unknown as a missing one."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                api_tokens.delete().where(
                    api_tokens.c.id == token_id, api_tokens.c.user_id == user.id
                )
            )
        if result.rowcount == 0:
            raise NotFound("token_not_found", f"you have no token {token_id}")

    async def live(self, secrets_: Collection[str]) -> set[str]:
        """Those of the secrets that belong to a token (not revoked), each one's
        last_used_at kept as by `user`: one query per chunk, not one per secret (a node's
        heartbeat checks all its bots' sockets)."""
        by_digest = {_digest(s): s for s in secrets_ if _plausible(s)}
        digests = list(by_digest)
        found: set[str] = set()
        now = now_utc()
        stale: list[int] = []
        for start in range(0, len(digests), BULK_CHUNK):
            query = sa.select(
                api_tokens.c.id, api_tokens.c.secret_hash, api_tokens.c.last_used_at
            ).where(api_tokens.c.secret_hash.in_(digests[start : start + BULK_CHUNK]))
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
            for row in rows:
                found.add(by_digest[row.secret_hash])
                if _stale(row.last_used_at, now):
                    stale.append(int(row.id))
        for start in range(0, len(stale), BULK_CHUNK):
            async with self._engine.begin() as conn:
                await conn.execute(
                    api_tokens.update()
                    .where(api_tokens.c.id.in_(stale[start : start + BULK_CHUNK]))
                    .values(last_used_at=now)
                )
        return found

    async def user(self, secret: str) -> User | None:
        """The user a bearer secret belongs to, or None."""
        if not _plausible(secret):
            return None
        query = (
            sa.select(
                api_tokens.c.id.label("token_id"),
                api_tokens.c.last_used_at,
                users.c.id,
                users.c.username,
                users.c.display_name,
                users.c.is_admin,
            )
            .select_from(api_tokens.join(users, users.c.id == api_tokens.c.user_id))
            .where(api_tokens.c.secret_hash == _digest(secret))
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        now = now_utc()
        if _stale(row.last_used_at, now):
            async with self._engine.begin() as conn:
                await conn.execute(
                    api_tokens.update()
                    .where(api_tokens.c.id == row.token_id)
                    .values(last_used_at=now)
                )
        return User(int(row.id), row.username, row.display_name, bool(row.is_admin))
