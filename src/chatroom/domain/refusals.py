"""Why the server says no, as named exceptions with a stable code. Pure, no I/O.

The accounts and the room directory raise these; the web layer turns each kind into its
HTTP status (web/errors.py). The WebSocket answers with `error` frames of its own
(`chatroom.domain.frames.ErrorCode`); a code both speak, `room_not_found`, reads the same.
"""

from __future__ import annotations


class Refused(Exception):
    """A request the server turns down; `code` is the contract's stable error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotAuthenticated(Refused):
    pass


class Forbidden(Refused):
    pass


class NotFound(Refused):
    pass


class Conflict(Refused):
    pass


class Throttled(Refused):
    def __init__(self, message: str, retry_after_s: int, *, code: str = "throttled") -> None:
        super().__init__(code, message)
        self.retry_after_s = retry_after_s


def room_not_found(slug: str) -> NotFound:
    # The same answer for a room that does not exist and a private room one may not see.
    return NotFound("room_not_found", f"there is no room {slug[:40]!r}")
