"""When a transaction of the archiver looks for held changes to apply, with no I/O.

An edit or delete whose message is not archived yet is kept in `message_events`, held,
and applied by a later look (`store/change_writes.apply_held`: one query, and a round
trip of every transaction that runs it). A look finds the held changes whose message is
archived now. Most batches hold no change and follow none held, so a look is made only:

    at once     in a transaction holding edits or deletes (theirs apply with them, as a
                look in every transaction did); in every transaction while edits or
                deletes this archiver wrote are seen held (for `WAIT_S` at most: another
                archiver may have applied them unseen), and right after a look that met
                its limit (more may be ready)
    a sweep     at most every `SWEEP_EVERY_S` once messages were committed since the last
                look: their held changes may be another archiver's (or ones committed
                meanwhile); when idle (continuous mode), and at the end of a drain, one
                transaction only for it
"""

from __future__ import annotations

from collections.abc import Iterable

from chatroom.domain.stream_ids import StreamId

SWEEP_EVERY_S = 1.0
WAIT_S = 60.0

# A change by its room's id and its own stream id.
ChangeKey = tuple[int, StreamId]


class HeldSweeps:
    """One archiver's knowledge of what may be held, shared by its SQL writers."""

    __slots__ = ("_every_s", "_full", "_last_at", "_owed", "_wait_s", "_waiting")

    def __init__(self, every_s: float = SWEEP_EVERY_S, wait_s: float = WAIT_S) -> None:
        self._every_s = every_s
        self._wait_s = wait_s
        self._waiting: dict[ChangeKey, float] = {}  # ours seen held, since when
        self._owed = False  # messages committed since the last look
        self._full = False  # the last look applied as many as one look may
        self._last_at: float | None = None

    def due(self, *, holds_changes: bool, now: float) -> bool:
        """Whether a batch's transaction looks (`holds_changes`: it holds edits or
        deletes)."""
        if holds_changes or self._full or self._still_waiting(now):
            return True
        return self._owed and self._swept_long_ago(now)

    def sweep_due(self, now: float) -> bool:
        """Whether an idle archiver looks, in a transaction of its own."""
        return self.pending(now) and self._swept_long_ago(now)

    def pending(self, now: float) -> bool:
        """Whether anything may still be held that a look would apply (a drain ends with
        a look then)."""
        return self._owed or self._full or self._still_waiting(now)

    def looked(
        self, held: Iterable[ChangeKey], applied: Iterable[ChangeKey], *, full: bool, now: float
    ) -> None:
        """A look was committed: `held`, the edits and deletes its transaction wrote;
        `applied`, the changes it applied; `full`, whether it applied its limit."""
        done = set(applied)
        for key in done:
            self._waiting.pop(key, None)
        for key in held:
            if key not in done:
                self._waiting.setdefault(key, now)
        self._full = full
        self._owed = False
        self._last_at = now

    def skipped(self, *, messages: bool) -> None:
        """A transaction without a look was committed (`messages`: it wrote some)."""
        if messages:
            self._owed = True

    def _swept_long_ago(self, now: float) -> bool:
        return self._last_at is None or now - self._last_at >= self._every_s

    def _still_waiting(self, now: float) -> bool:
        if self._waiting and min(self._waiting.values()) <= now - self._wait_s:
            self._waiting = {k: t for k, t in self._waiting.items() if t > now - self._wait_s}
        return bool(self._waiting)
