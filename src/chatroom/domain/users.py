"""A registered user, as the server knows them once authenticated. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatroom.domain.events import Author


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    display_name: str
    is_admin: bool = False

    @property
    def author(self) -> Author:
        """The user as a message or presence frame names them."""
        return Author(self.id, self.username, self.display_name)

    def as_json(self) -> dict[str, Any]:
        """The contract's User, plus `is_admin` (an extension the web client reads)."""
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "is_admin": self.is_admin,
        }
