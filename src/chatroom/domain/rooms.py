"""A chat room: public (anyone may read and join) or private (members only). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOBBY = "lobby"


@dataclass(frozen=True, slots=True)
class Room:
    id: int
    slug: str
    title: str
    is_private: bool
    owner_id: int | None  # None for the lobby, which belongs to no one

    def as_json(self, *, online: int, joined: bool, owned: bool) -> dict[str, Any]:
        """The contract's Room, plus `joined` and `owned` (extensions for the client)."""
        return {
            "slug": self.slug,
            "title": self.title,
            "private": self.is_private,
            "online": online,
            "joined": joined,
            "owned": owned,
        }
