"""A chat room: public (anyone may read and join) or private (members only). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOBBY = "lobby"
# The slugs of direct conversations start with this; a room's slug cannot (rules.SLUG).
DM_PREFIX = "dm."


@dataclass(frozen=True, slots=True)
class Room:
    id: int
    slug: str
    title: str
    is_private: bool
    owner_id: int | None  # None for the lobby and direct conversations: no one's

    @property
    def is_dm(self) -> bool:
        """A direct conversation: private, its participants fixed when it was started."""
        return self.slug.startswith(DM_PREFIX)

    def as_json(self, *, online: int, joined: bool, owned: bool) -> dict[str, Any]:
        """The contract's Room, plus `joined` and `owned` (extensions for the client)."""
        return {
            "slug": self.slug,
            "title": self.title,
            "private": self.is_private,
            "online": online,
            "joined": joined,
            "owned": owned,
            "kind": "dm" if self.is_dm else "room",
        }
