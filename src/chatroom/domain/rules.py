"""The contract's rules for names, texts and ids (PRODUCT.md section 5), each written once.

The services, the frame parser, the envelope decoder, the SQL columns and the HTTP API's
schema all read these: a limit changed here changes everywhere it is checked or shown.
"""

from __future__ import annotations

import re
import unicodedata

USERNAME_MIN, USERNAME_MAX = 3, 32
USERNAME = re.compile(rf"^[A-Za-z0-9_]{{{USERNAME_MIN},{USERNAME_MAX}}}\Z")
USERNAME_RULE = f"{USERNAME_MIN}-{USERNAME_MAX} of A-Z, a-z, 0-9 and _"

SLUG_MIN, SLUG_MAX = 2, 32
SLUG = re.compile(rf"^[a-z0-9][a-z0-9-]{{{SLUG_MIN - 1},{SLUG_MAX - 1}}}\Z")
SLUG_RULE = f"{SLUG_MIN}-{SLUG_MAX} of a-z, 0-9 and -, not starting with -"
# A direct conversation's slug: `dm.` and a digest of its participants' ids. A room's slug
# has no `.`, so the two never collide. Wherever a room is named (frames, the stream
# envelope, routes) either may appear; only `check_slug` (creating a room) is strict.
DM_SLUG = re.compile(r"^dm\.[0-9a-f]{24}\Z")
# How many people a direct conversation holds at most, its starter included.
DM_PEOPLE_MAX = 8


def is_room_name(text: object) -> bool:
    """Whether `text` can name a room: a room's slug, or a direct conversation's."""
    return isinstance(text, str) and (
        SLUG.match(text) is not None or DM_SLUG.match(text) is not None
    )


# The room directory (GET /api/rooms): a page of rooms, and a search text.
LISTING_PAGE_DEFAULT, LISTING_PAGE_MAX = 100, 200
SEARCH_MAX = 64

# A room created without a slug gets one from its title ("Team Standup" -> "team-standup");
# a title with nothing in a-z/0-9 (Chinese, Cyrillic, emoji) gets this prefix and a random
# base36 tail instead. The web client derives the same (client/src/lib/rules.ts; both are
# checked against tests/fixtures/slug_from_title.json).
SLUG_FALLBACK_PREFIX = "room-"
SLUG_FALLBACK_RANDOM_CHARS = 6

CLIENT_ID_MAX = 64
CLIENT_ID_RULE = f"1-{CLIENT_ID_MAX} printable ASCII characters"


def is_client_id(text: str) -> bool:
    """1-CLIENT_ID_MAX characters from "!" to "~" (printable ASCII but the space): string
    methods rather than a pattern, as every entry read and every send checks one."""
    return (
        0 < len(text) <= CLIENT_ID_MAX and text.isascii() and text.isprintable() and " " not in text
    )


DISPLAY_NAME_MAX = 64
TITLE_MAX = 128  # a room's title
TOKEN_NAME_MAX = 64  # an API token's name
PASSWORD_MIN = 8
# Longer passwords are refused before hashing: a megabyte password is a CPU attack.
PASSWORD_MAX = 1024

# WebSocket frames: what a frame spends of its connection's frame bucket (hub/limits.py).
# A subscribe reads Redis and SQL and joins presence; every other frame costs 1.
SUBSCRIBE_FRAME_COST = 2.0
# Unread messages are counted up to this many per room; past it a client shows "99+".
UNREAD_COUNT_MAX = 99

# A reaction: one emoji (a sequence of code points, joined ones included), at most this
# many code points, holding at least one symbol and no spaces, controls or letters.
EMOJI_MAX = 16
# The reason a moderator gives for deleting a message (kept for admins).
DELETE_REASON_MAX = 500


def is_emoji(text: object) -> bool:
    """Whether `text` can be a reaction: one emoji, not arbitrary text."""
    if not isinstance(text, str) or not 0 < len(text) <= EMOJI_MAX:
        return False
    symbol = False
    for char in text:
        category = unicodedata.category(char)
        if category == "So" or char == "\u20e3":  # a symbol, or the keycap of 1️⃣
            symbol = True
        elif char in (_ZERO_WIDTH_JOINER, _EMOJI_PRESENTATION):
            continue  # joiners and the emoji presentation
        elif category in ("Sk", "Mn", "Me") or "0" <= char <= "9" or char in "#*":
            continue  # skin tones, combining marks, the digits and signs of keycaps
        else:
            return False
    return symbol


# The ceiling of any stored body, whatever the configured limit: the SQL column holds it.
STORED_BODY_MAX_CHARS = 16_000

# SQL stores ids (users, tokens, both parts of a message id) as signed 64-bit integers:
# nothing larger names a stored row.
SQL_ID_MAX = 2**63 - 1

_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")

# Characters a name or title may not hold: controls (Cc), format characters (Cf: bidi
# overrides and isolates, zero-width spaces and joiners, the BOM), line and paragraph
# separators, surrogates. Unseen, they let a name pass for another (`admin\u202e`, `al\u200bice`).
_UNSEEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_ZERO_WIDTH_JOINER = "\u200d"
_EMOJI_PRESENTATION = "\ufe0f"


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


def check_slug(slug: object) -> str:
    if not isinstance(slug, str) or not SLUG.match(slug):
        raise RuleError("invalid_slug", f"a room slug is {SLUG_RULE}")
    return slug


def check_cursor(cursor: object) -> str:
    """A room directory cursor: the slug of the last room of the page before."""
    if not isinstance(cursor, str) or not SLUG.match(cursor):
        raise RuleError("invalid_cursor", "cursor must be the next_cursor of the page before")
    return cursor


def check_search(text: object) -> str:
    """A room search: 1-64 characters after trimming, nothing unseen."""
    return clean_label(text, field="q", max_chars=SEARCH_MAX)


_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug_from_title(title: str) -> str | None:
    """The slug a title suggests: lowercase ASCII letters and digits, accents dropped,
    everything else one `-`; None when that leaves no valid slug (a title in Chinese)."""
    folded = unicodedata.normalize("NFKD", title.lower())
    letters = "".join(char for char in folded if not unicodedata.category(char).startswith("M"))
    slug = _NOT_SLUG.sub("-", letters).lstrip("-")[:SLUG_MAX].rstrip("-")
    return slug if SLUG.match(slug) else None


def fallback_slug(random_tail: str) -> str:
    """A slug for a title that suggests none: `room-` and a random base36 tail."""
    return check_slug(SLUG_FALLBACK_PREFIX + random_tail[:SLUG_FALLBACK_RANDOM_CHARS])


def check_username(username: object) -> str:
    if not isinstance(username, str) or not USERNAME.match(username):
        raise RuleError("invalid_username", f"a username is {USERNAME_RULE}")
    return username


def _emoji_part(char: str) -> bool:
    return unicodedata.category(char) in ("So", "Sk") or char == _EMOJI_PRESENTATION


def unseen_character(text: str) -> str | None:
    """The first control or invisible formatting character of `text`, or None.

    A zero-width joiner between two emoji (👩\u200d💻, a skin tone, U+FE0F) is part of
    the emoji and allowed; between letters it is an invisible difference, refused.
    """
    for index, char in enumerate(text):
        if unicodedata.category(char) not in _UNSEEN:
            continue
        if (
            char == _ZERO_WIDTH_JOINER
            and 0 < index < len(text) - 1
            and _emoji_part(text[index - 1])
            and _emoji_part(text[index + 1])
        ):
            continue
        return char
    return None


def clean_label(value: object, *, field: str, max_chars: int) -> str:
    """A short human text (a display name, a room title, a token name): trimmed,
    1..max_chars characters of any script, nothing unseen (controls, bidi overrides,
    zero-width characters, lone surrogates); else `invalid_<field>`."""
    code = f"invalid_{field}"
    if not isinstance(value, str):
        raise RuleError(code, f"{field} must be a string")
    trimmed = value.strip()
    if not 1 <= len(trimmed) <= max_chars or has_lone_surrogate(trimmed):
        raise RuleError(code, f"{field} is 1-{max_chars} characters")
    unseen = unseen_character(trimmed)
    if unseen is not None:
        raise RuleError(
            code,
            f"{field} may not hold control or invisible formatting characters "
            f"(U+{ord(unseen):04X}: {unicodedata.name(unseen, 'a control character')})",
        )
    return trimmed


def check_display_name(name: object) -> str:
    return clean_label(name, field="display_name", max_chars=DISPLAY_NAME_MAX)
