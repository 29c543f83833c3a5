"""What a valid username, room slug, client id and message body are (PRODUCT.md section 5)."""

from __future__ import annotations

import re

USERNAME = re.compile(r"^[A-Za-z0-9_]{3,32}\Z")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,31}\Z")
CLIENT_ID = re.compile(r"^[\x21-\x7e]{1,64}\Z")
DISPLAY_NAME_MAX = 64
PASSWORD_MIN = 8

# The ceiling of any stored body, whatever the configured limit: the SQL column holds it.
STORED_BODY_MAX_CHARS = 16_000
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


class RuleError(ValueError):
    """A broken rule; `code` is the stable error code of the contract."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def has_lone_surrogate(text: str) -> bool:
    return _LONE_SURROGATE.search(text) is not None


def clean_body(body: object, max_chars: int) -> str:
    """The body to store: trimmed, 1..max_chars characters, no lone surrogates.

    NUL, bidi marks and every other character are kept: they are text.
    """
    if not isinstance(body, str):
        raise RuleError("missing_field", "body must be a string")
    trimmed = body.strip()
    if not trimmed:
        raise RuleError("empty_body", "the message is empty")
    if has_lone_surrogate(trimmed):
        raise RuleError("invalid_body", "the message holds a lone surrogate, not valid Unicode")
    if len(trimmed) > max_chars:
        raise RuleError("body_too_long", f"the message is longer than {max_chars} characters")
    return trimmed


def check_client_id(client_id: object) -> str:
    if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
        raise RuleError("invalid_client_id", "client_id must be 1-64 printable ASCII characters")
    return client_id


def check_slug(slug: object) -> str:
    if not isinstance(slug, str) or not SLUG.match(slug):
        raise RuleError(
            "invalid_slug", "a room slug is 2-32 of a-z, 0-9 and -, not starting with -"
        )
    return slug


def check_username(username: object) -> str:
    if not isinstance(username, str) or not USERNAME.match(username):
        raise RuleError("invalid_username", "a username is 3-32 of A-Z, a-z, 0-9 and _")
    return username


def clean_label(value: object, *, field: str, max_chars: int) -> str:
    """A short human text (a display name, a room title, a token name): trimmed,
    1..max_chars characters of any script, no lone surrogates; else `invalid_<field>`."""
    code = f"invalid_{field}"
    if not isinstance(value, str):
        raise RuleError(code, f"{field} must be a string")
    trimmed = value.strip()
    if not 1 <= len(trimmed) <= max_chars or has_lone_surrogate(trimmed):
        raise RuleError(code, f"{field} is 1-{max_chars} characters")
    return trimmed


def check_display_name(name: object) -> str:
    return clean_label(name, field="display_name", max_chars=DISPLAY_NAME_MAX)
