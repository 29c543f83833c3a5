"""Site bans in SQL, and the users as an admin lists them.

A ban is stored with its moderation log entry in one transaction, and the user's API
tokens are deleted in it: a token of a banned user never works again, even once the ban
is over. Ending their sessions (Redis) and closing their sockets (every node) is the
caller's part (`Accounts.ban`, `Hub.banned`). A ban whose time is over is no ban: its row
stays until the next ban or unban of that user replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatroom.accounts.users_table import now_utc, username_key
from chatroom.domain.moderation import Action, check_ban
from chatroom.domain.rules import (
    LISTING_PAGE_MAX,
    USERNAME,
    USERNAME_RULE,
    RuleError,
    check_search,
)
from chatroom.domain.stream_ids import iso_millis
from chatroom.domain.users import User
from chatroom.rooms.moderation_log import millis, moment_of, record_action
from chatroom.store.tables import api_tokens, site_bans, users


@dataclass(frozen=True, slots=True)
class Ban:
    until_ms: int | None  # None: for good


@dataclass(frozen=True, slots=True)
class ListedUser:
    user: User
    ban: Ban | None

    def as_json(self) -> dict[str, Any]:
        ban = self.ban
        return {
            **self.user.as_json(),
            "banned": ban is not None,
            "banned_until": None
            if ban is None or ban.until_ms is None
            else iso_millis(ban.until_ms),
        }


@dataclass(frozen=True, slots=True)
class UserPage:
    users: list[ListedUser]  # by username, whatever the case
    has_more: bool


def _in_force() -> sa.ColumnElement[bool]:
    return sa.or_(site_bans.c.until.is_(None), site_bans.c.until > now_utc())


class SiteBans:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def active(self, user_id: int) -> Ban | None:
        """The user's ban in force, if any."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(site_bans.c.until).where(site_bans.c.user_id == user_id, _in_force())
                )
            ).first()
        if row is None:
            return None
        return Ban(None if row.until is None else millis(row.until))

    async def ban(self, actor: User, target: User, until_ms: int | None, reason: str) -> None:
        """Ban `target` until `until_ms` (None: for good); their tokens are deleted."""
        async with self._engine.begin() as conn:
            admins_left = await self._admins_not_banned(conn, besides=target.id)
            check_ban(actor, target, admins_left)
            await conn.execute(site_bans.delete().where(site_bans.c.user_id == target.id))
            await conn.execute(
                site_bans.insert().values(
                    user_id=target.id,
                    until=None if until_ms is None else moment_of(until_ms),
                    created_by=actor.id,
                    created_at=now_utc(),
                )
            )
            await conn.execute(api_tokens.delete().where(api_tokens.c.user_id == target.id))
            await record_action(
                conn,
                Action.BAN,
                actor_id=actor.id,
                target_id=target.id,
                reason=reason,
                until_ms=until_ms,
            )

    async def unban(self, actor: User, target: User, reason: str) -> bool:
        """Lift the user's ban; False if none was in force."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                site_bans.delete().where(site_bans.c.user_id == target.id, _in_force())
            )
            if result.rowcount == 0:
                return False
            await record_action(
                conn, Action.UNBAN, actor_id=actor.id, target_id=target.id, reason=reason
            )
        return True

    async def _admins_not_banned(self, conn: AsyncConnection, *, besides: int) -> int:
        banned = sa.select(site_bans.c.user_id).where(_in_force())
        count = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(users)
            .where(users.c.is_admin == sa.true(), users.c.id != besides, users.c.id.not_in(banned))
        )
        return int(count or 0)

    async def listing(
        self, *, after: str | None = None, limit: int = LISTING_PAGE_MAX, search: str | None = None
    ) -> UserPage:
        """A page of every user, by username whatever the case: the first `limit` after
        the username `after` (exclusive), whose username or display name holds `search`."""
        query = sa.select(
            users.c.id,
            users.c.username,
            users.c.display_name,
            users.c.is_admin,
            site_bans.c.user_id.label("banned_user"),
            site_bans.c.until,
        ).select_from(
            users.outerjoin(site_bans, sa.and_(site_bans.c.user_id == users.c.id, _in_force()))
        )
        if after is not None:
            if not USERNAME.match(after):
                raise RuleError("invalid_cursor", f"cursor must be a username: {USERNAME_RULE}")
            query = query.where(users.c.username_key > username_key(after))
        if search is not None:
            words = check_search(search).lower()
            query = query.where(
                sa.or_(
                    users.c.username_key.contains(words, autoescape=True),
                    sa.func.lower(users.c.display_name).contains(words, autoescape=True),
                )
            )
        query = query.order_by(users.c.username_key).limit(limit + 1)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        listed = [
            ListedUser(
                User(int(r.id), r.username, r.display_name, bool(r.is_admin)),
                None
                if r.banned_user is None
                else Ban(None if r.until is None else millis(r.until)),
            )
            for r in rows[:limit]
        ]
        return UserPage(listed, has_more=len(rows) > limit)
