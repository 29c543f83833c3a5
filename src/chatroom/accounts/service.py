"""Accounts: register, log in and out, find the user behind a session or a token.

The order of a login is the defence: cheap checks, then the throttle counters, and only
then the password hash, so that a flood of guesses costs the server almost nothing.
Unknown user and wrong password take the same path through the hash and end in the same
refusal.
"""

from __future__ import annotations

import hashlib
import logging

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.accounts.passwords import Passwords
from chatroom.accounts.sessions import SessionStore
from chatroom.accounts.throttle import Limit, Throttle
from chatroom.accounts.tokens import ApiToken, ApiTokens
from chatroom.accounts.users_table import UsersTable, username_key
from chatroom.domain.refusals import NotAuthenticated, Throttled
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


def check_password(password: object) -> str:
    if not isinstance(password, str):
        raise RuleError("invalid_password", "password must be a string")
    if len(password) < PASSWORD_MIN:
        raise RuleError("invalid_password", f"a password has at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise RuleError("invalid_password", f"a password has at most {PASSWORD_MAX} characters")
    if has_lone_surrogate(password):
        raise RuleError("invalid_password", "the password holds a lone surrogate")
    return password


def bad_credentials() -> NotAuthenticated:
    return NotAuthenticated("bad_credentials", "wrong username or password")


def _subject(text: str) -> str:
    # A fixed-size Redis key part for any input, and no raw user input in key names.
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class Accounts:
    def __init__(self, settings: Settings, redis: Redis, engine: AsyncEngine) -> None:
        self._settings = settings
        self.passwords = Passwords()
        self.users = UsersTable(engine)
        self.sessions = SessionStore(
            redis, idle_s=settings.session_idle_s, absolute_s=settings.session_absolute_s
        )
        self.tokens = ApiTokens(engine)
        self._throttle = Throttle(redis)

    async def register(
        self, username: object, password: object, display_name: object, *, address: str
    ) -> User:
        name = check_username(username)
        secret = check_password(password)
        shown = name if display_name is None else check_display_name(display_name)
        wait = await self._throttle.hit(
            [
                Limit(
                    "register-address",
                    _subject(address),
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
        wait = await self._throttle.hit(
            [
                Limit(
                    "login-user",
                    _subject(username_key(username)),
                    self._settings.login_attempts_per_minute,
                    60,
                ),
                Limit(
                    "login-address",
                    _subject(address),
                    self._settings.login_attempts_per_address_per_minute,
                    60,
                ),
            ]
        )
        if wait:
            raise Throttled("too many login attempts; try again later", wait)
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
        if self.passwords.needs_rehash(stored.password_hash):
            await self.users.set_password_hash(stored.user.id, await self.passwords.hash(password))
        session_id = await self.sessions.create(stored.user)
        log.info("user %s logged in", stored.user.username)
        return stored.user, session_id

    async def logout(self, session_id: str) -> None:
        await self.sessions.revoke(session_id)

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
