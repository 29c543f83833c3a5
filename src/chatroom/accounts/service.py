"""Accounts: register, log in and out, find the user behind a session or a token.

The order of a login is the defence: cheap checks, then the throttle counters, and only
then the password hash, so that a flood of guesses costs the server almost nothing.
Unknown user and wrong password take the same path through the hash and end in the same
refusal. A password change is guessed like a login and counted by the same throttle.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.accounts.bans import SiteBans
from chatroom.accounts.passwords import Passwords
from chatroom.accounts.sessions import SessionStore
from chatroom.accounts.throttle import (
    Limit,
    LoginLimits,
    LoginThrottle,
    Throttle,
    address_block,
    subject,
)
from chatroom.accounts.tokens import ApiToken, ApiTokens
from chatroom.accounts.users_table import UsersTable, username_key
from chatroom.domain.moderation import BANNED, until_text
from chatroom.domain.refusals import Forbidden, NotAuthenticated, NotFound, Throttled
from chatroom.domain.rooms import LOBBY
from chatroom.domain.rules import (
    PASSWORD_MAX,
    PASSWORD_MIN,
    USERNAME,
    RuleError,
    check_display_name,
    check_username,
    has_lone_surrogate,
)
from chatroom.domain.users import User
from chatroom.settings import Settings

log = logging.getLogger(__name__)


def check_password(password: object, *, field: str = "password") -> str:
    code = f"invalid_{field}"
    if not isinstance(password, str):
        raise RuleError(code, f"{field} must be a string")
    if len(password) < PASSWORD_MIN:
        raise RuleError(code, f"a password has at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise RuleError(code, f"a password has at most {PASSWORD_MAX} characters")
    if has_lone_surrogate(password):
        raise RuleError(code, "the password holds a lone surrogate")
    return password


def bad_credentials() -> NotAuthenticated:
    return NotAuthenticated("bad_credentials", "wrong username or password")


def _throttled(wait: int) -> Throttled:
    return Throttled("too many login attempts; try again later", wait)


class Accounts:
    def __init__(self, settings: Settings, redis: Redis, engine: AsyncEngine) -> None:
        self._settings = settings
        self.passwords = Passwords()
        self.users = UsersTable(engine)
        self.sessions = SessionStore(
            redis, idle_s=settings.session_idle_s, absolute_s=settings.session_absolute_s
        )
        self.tokens = ApiTokens(engine)
        self.bans = SiteBans(engine)
        self.throttle = Throttle(redis)
        self._logins = LoginThrottle(
            redis,
            LoginLimits(
                per_address=settings.login_attempts_per_address_per_minute,
                per_account_and_address=settings.login_attempts_per_minute,
                per_account=settings.login_attempts_per_account_per_hour,
            ),
        )

    async def register(
        self, username: object, password: object, display_name: object, *, address: str
    ) -> User:
        name = check_username(username)
        secret = check_password(password)
        shown = name if display_name is None else check_display_name(display_name)
        wait = await self.throttle.hit(
            [
                Limit(
                    "register-address",
                    subject(address_block(address)),
                    self._settings.registrations_per_address_per_hour,
                    3600,
                )
            ]
        )
        if wait:
            raise Throttled("too many registrations from your address; try again later", wait)
        password_hash = await self.passwords.hash(secret)
        user = await self.users.create(name, shown, password_hash, join=LOBBY)
        log.info(
            "registered user %s (id %d%s)",
            user.username,
            user.id,
            ", admin" if user.is_admin else "",
        )
        return user

    async def login(self, username: object, password: object, *, address: str) -> tuple[User, str]:
        """Check the password; returns the user and a new session id."""
        if not isinstance(username, str) or not isinstance(password, str):
            raise bad_credentials()
        account = username_key(username)
        wait = await self._logins.attempt(account, address)
        if wait:
            raise _throttled(wait)
        if len(password) > PASSWORD_MAX or has_lone_surrogate(password):
            # No such password can be stored; still spend the hash time of a real check.
            await self.passwords.verify_nobody("x" * PASSWORD_MIN)
            raise bad_credentials()
        # A name that breaks the username rule cannot exist: no SQL lookup for it.
        stored = await self.users.by_username(username) if USERNAME.match(username) else None
        if stored is None:
            await self.passwords.verify_nobody(password)
            raise bad_credentials()
        if not await self.passwords.verify(stored.password_hash, password):
            raise bad_credentials()
        await self._logins.succeeded(account, address)
        await self._refuse_banned(stored.user)
        if self.passwords.needs_rehash(stored.password_hash):
            await self.users.set_password_hash(stored.user.id, await self.passwords.hash(password))
        session_id = await self.sessions.create(stored.user)
        # A ban stored after the check above but before the session was: the ban's
        # `revoke_all` may have run before the session existed, so look once more.
        if await self.bans.active(stored.user.id) is not None:
            await self.sessions.revoke(session_id)
            await self._refuse_banned(stored.user)
        log.info("user %s logged in", stored.user.username)
        return stored.user, session_id

    async def change_password(
        self, user: User, current: object, new: object, *, keep_session: str, address: str
    ) -> int:
        """Set a new password once the current one is proven, and end every other session
        of the user (the one asking, `keep_session`, stays); returns how many ended."""
        secret = check_password(new, field="new_password")
        if not isinstance(current, str):
            raise RuleError("invalid_current_password", "current_password must be a string")
        account = username_key(user.username)
        wait = await self._logins.attempt(account, address)
        if wait:
            raise _throttled(wait)
        stored = await self.users.by_username(user.username)
        if stored is None:
            raise NotAuthenticated("not_authenticated", "this account no longer exists")
        if (
            len(current) > PASSWORD_MAX
            or has_lone_surrogate(current)
            or not await self.passwords.verify(stored.password_hash, current)
        ):
            raise Forbidden("wrong_password", "the current password is wrong")
        await self._logins.succeeded(account, address)
        await self.users.set_password_hash(user.id, await self.passwords.hash(secret))
        ended = await self.sessions.revoke_all(user.id, keep=keep_session)
        log.info("user %s changed their password; %d other sessions ended", user.username, ended)
        return ended

    async def change_display_name(self, user: User, display_name: object) -> User:
        """A new display name (any script, 1-64 characters, nothing unseen), in SQL and in
        every session of the user; messages sent from now on carry it."""
        shown = check_display_name(display_name)
        await self.users.set_display_name(user.id, shown)
        await self.sessions.rename(user.id, shown)
        log.info("user %s changed their display name", user.username)
        return User(user.id, user.username, shown, user.is_admin)

    async def _refuse_banned(self, user: User) -> None:
        ban = await self.bans.active(user.id)
        if ban is not None:
            raise Forbidden(BANNED, f"this account is banned {until_text(ban.until_ms)}")

    async def find(self, username: object) -> User:
        """The user of this username (any case), or 404 `user_not_found`."""
        if not isinstance(username, str) or not USERNAME.match(username):
            raise NotFound("user_not_found", "there is no such user")
        stored = await self.users.by_username(username)
        if stored is None:
            raise NotFound("user_not_found", f"there is no user {username!r}")
        return stored.user

    async def ban(self, actor: User, target: User, until_ms: int | None, reason: str) -> int:
        """Ban `target` (SQL, with the log entry; their tokens deleted) and end every
        session of theirs; returns how many ended. Their sockets: `Hub.banned`."""
        await self.bans.ban(actor, target, until_ms, reason)
        ended = await self.sessions.revoke_all(target.id)
        log.info(
            "user %s banned %s %s (%d sessions ended)",
            actor.username,
            target.username,
            until_text(until_ms),
            ended,
        )
        return ended

    async def logout(self, session_id: str) -> int | None:
        """End the session; returns its user's id, if it was a live session."""
        return await self.sessions.revoke(session_id)

    async def logout_everywhere(self, user: User) -> int:
        """End every session of the user, on every device; returns how many there were."""
        ended = await self.sessions.revoke_all(user.id)
        log.info("user %s logged out everywhere (%d sessions)", user.username, ended)
        return ended

    async def user_for_session(self, session_id: str) -> User | None:
        return await self.sessions.user(session_id)

    async def user_for_token(self, secret: str) -> User | None:
        return await self.tokens.user(secret)

    async def create_token(self, user: User, name: object) -> tuple[ApiToken, str]:
        token, secret = await self.tokens.create(user, name)
        log.info("user %s created API token %d", user.username, token.id)
        return token, secret

    async def list_tokens(self, user: User) -> list[ApiToken]:
        return await self.tokens.list(user)

    async def delete_token(self, user: User, token_id: int) -> None:
        await self.tokens.delete(user, token_id)
