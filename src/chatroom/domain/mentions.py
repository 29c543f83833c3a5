"""Mentions in a message body: `@username` (any case) and `@room`. Pure.

A mention is `@` followed by the name, not inside a longer word on either side:
`@alice,` and `(@alice)` mention alice; `bob@alice.example` and `@alice_b` do not.
"""

from __future__ import annotations

import re
from functools import lru_cache

ROOM_MENTION = "room"  # `@room`: everyone in the room

_WORD = "A-Za-z0-9_"


@lru_cache(maxsize=4096)
def _pattern(username: str) -> re.Pattern[str]:
    names = "|".join(re.escape(name) for name in (username, ROOM_MENTION))
    return re.compile(rf"(?<![{_WORD}@])@(?:{names})(?![{_WORD}])", re.IGNORECASE)


def mentions(body: str, username: str) -> bool:
    """Whether the body mentions this user (by name or with `@room`)."""
    return "@" in body and _pattern(username).search(body) is not None
