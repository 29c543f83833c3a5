"""Writing one batch to SQL, and what a failed write means.

A batch (its rows and dead letters) is one transaction. When it fails, the error decides:

    outage    SQL does not answer: a check on a fresh connection fails too (or SQLite's
              file is locked by another writer). Waited out with backoff, logged once
              each way (`retries.Dependency`); the batch is written whole afterwards.
    busy      a deadlock or a lock wait timeout (MySQL 1213, 1205): tried again, never
              a verdict on the rows.
    refused   SQL answers, but not to this batch: a constraint or a value (IntegrityError,
              DataError), or a statement it cannot take (MariaDB drops the connection
              after a packet over max_allowed_packet). Not an outage: the batch is
              halved until the refused entry is alone, and the others are written. A
              lone row refused by a constraint or a value is dead-lettered at once; one
              refused otherwise is tried `LONE_ATTEMPTS` times (SQL answering each time)
              before it is, so that a connection lost by chance is no verdict.

Only an entry that is itself refused becomes a dead letter, with SQL's reason.

A writer keeps its connection from one batch to the next (`KEEP_S` at most), rather
than taking one from the pool for each: no pre-ping before each transaction and no reset
after it, two round trips fewer per batch. What the pre-ping was for still holds: a kept
connection that fails as a lost one would (the server dropped it meanwhile) is let go,
and the transaction is tried once more on a connection the pool checks, before the
failure is judged as above. Any failure lets the connection go.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from enum import Enum

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatroom import redis_keys
from chatroom.archiver.batching import Delivery, split_for_retry
from chatroom.archiver.failpoints import Failpoints
from chatroom.archiver.held_sweeps import ChangeKey, HeldSweeps
from chatroom.archiver.partitions import HeldScope
from chatroom.archiver.retries import Dependency, Stopped, pause
from chatroom.outages import SQL_REJECTED, Backoff, first_line
from chatroom.store.archive_writes import (
    ArchivedMessage,
    DeadLetter,
    Duplicate,
    answers_on_a_fresh_connection,
    insert_dead_letters,
    statement_limit,
    write_batch,
)
from chatroom.store.change_writes import HELD_PER_BATCH, ArchivedChange, apply_changes, apply_held

log = logging.getLogger(__name__)

Row = tuple[Delivery, ArchivedMessage | ArchivedChange]

# What a failed write can mean (see the module docstring).
SQL_FAILURES = (SQLAlchemyError, OSError, TimeoutError)
MYSQL_BUSY = frozenset({1205, 1213})  # lock wait timeout, deadlock
LONE_ATTEMPTS = 3
# A writer gives its connection back to the pool (which checks it before the next use,
# and recycles it when old) after keeping it this long.
KEEP_S = 10.0


class Failure(Enum):
    OUTAGE = "outage"
    BUSY = "busy"
    REFUSED = "refused"
    UNKNOWN = "unknown"  # refused or outage: a check on a fresh connection tells


def mysql_error_code(exc: BaseException) -> int | None:
    """The MySQL/MariaDB error number of a driver error SQLAlchemy wrapped, if any."""
    args = getattr(getattr(exc, "orig", None), "args", None) or ()
    return args[0] if args and isinstance(args[0], int) else None


def classify(exc: BaseException) -> Failure:
    """What a failed batch write means, as far as the error alone tells."""
    if isinstance(exc, SQL_REJECTED):
        return Failure.REFUSED
    if mysql_error_code(exc) in MYSQL_BUSY:
        return Failure.BUSY
    text = first_line(exc).lower()
    if "database is locked" in text or "database table is locked" in text:
        return Failure.OUTAGE  # SQLite: another writer holds the file, for now
    return Failure.UNKNOWN


def dead_letter(entry: Delivery, reason: str) -> DeadLetter:
    """The dead letter of an entry that cannot be archived, with its (bounded) bytes."""
    return DeadLetter.of_entry(
        redis_keys.room_stream(entry.room),
        str(entry.id),
        entry.room,
        entry.raw,
        reason,
        entry.deliveries,
    )


def late_copy_reason(duplicate: Duplicate) -> str:
    first = "an earlier message" if duplicate.first is None else str(duplicate.first)
    return f"duplicate client_id of {first}"


def _halves(rows: list[Row], letters: list[DeadLetter]) -> list[tuple[list[Row], list[DeadLetter]]]:
    """The batch in two halves by item count (rows first, then letters), each non-empty."""
    items: list[Row | DeadLetter] = [*rows, *letters]
    first, second = split_for_retry(items)
    return [
        ([i for i in half if isinstance(i, tuple)], [i for i in half if isinstance(i, DeadLetter)])
        for half in (first, second)
    ]


class BatchWriter:
    """Writes batches to SQL in one transaction each; see the module docstring."""

    def __init__(
        self,
        writes: AsyncEngine,
        sql: Dependency,
        failpoints: Failpoints,
        sweeps: HeldSweeps | None = None,
    ) -> None:
        self._writes = writes  # see create_writes_engine
        # When transactions look for held changes; shared by an archiver's writers.
        self._sweeps = sweeps or HeldSweeps()
        self._sql = sql
        self._failpoints = failpoints
        self._max_bytes: int | None = None  # of one statement, read at the first batch
        self._backoff = Backoff()
        # The connection kept across batches, and when it was taken from the pool.
        self._conn: AsyncConnection | None = None
        self._taken_at = 0.0

    async def close(self) -> None:
        """Give the kept connection back to the pool (at the run's end)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*SQL_FAILURES):
                await conn.close()

    async def _discard(self) -> None:
        """Let the kept connection go after a failure: its state is unknown (a statement
        cut short, a transaction not rolled back), so it is closed, not reused."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(*SQL_FAILURES):
            await conn.invalidate()
        with contextlib.suppress(*SQL_FAILURES):
            await conn.close()

    async def _connection(self) -> tuple[AsyncConnection, bool]:
        """The kept connection, or one from the pool; and whether it was kept (used for
        an earlier batch, unchecked since)."""
        if self._conn is not None and time.monotonic() - self._taken_at < KEEP_S:
            return self._conn, True
        await self.close()
        self._conn = await self._writes.connect()
        self._taken_at = time.monotonic()
        return self._conn, False

    async def write(
        self,
        rows: list[Row],
        letters: list[DeadLetter],
        held: HeldScope | None = None,
        look: bool = True,
    ) -> list[DeadLetter]:
        """Write rows and dead letters, isolating what SQL refuses; returns the dead
        letters this added (refused rows, and late copies of a stored client_id). `held`:
        which rooms' held changes this transaction applies (None: every room); `look`:
        whether it looks for them at all (archiver/held_sweeps.py)."""
        attempts = 0
        while True:
            try:
                added = await self._transaction(rows, letters, held, look)
            except SQL_FAILURES as exc:
                failure = classify(exc)
                if failure is Failure.UNKNOWN:
                    reachable = await answers_on_a_fresh_connection(self._writes)
                    failure = Failure.REFUSED if reachable else Failure.OUTAGE
                if failure is Failure.OUTAGE:
                    await self._sql.failed(exc)
                    continue
                self._sql.recovered()  # it answers: whatever this is, it is no outage
                if failure is Failure.BUSY:
                    log.warning("SQL write busy (%s); trying the batch again", first_line(exc))
                    await self._wait()
                    continue
                if len(rows) + len(letters) > 1:
                    return await self._isolate(rows, letters, held, look)
                attempts += 1
                if attempts < LONE_ATTEMPTS and not isinstance(exc, SQL_REJECTED):
                    await self._wait()
                    continue
                return await self._refused(rows, letters, exc, held, look)
            self._sql.recovered()
            self._backoff.reset()
            return added

    async def _isolate(
        self, rows: list[Row], letters: list[DeadLetter], held: HeldScope | None, look: bool
    ) -> list[DeadLetter]:
        added: list[DeadLetter] = []
        for half_rows, half_letters in _halves(rows, letters):
            added += await self.write(half_rows, half_letters, held, look)
        return added

    async def _refused(
        self,
        rows: list[Row],
        letters: list[DeadLetter],
        exc: BaseException,
        held: HeldScope | None,
        look: bool,
    ) -> list[DeadLetter]:
        """The lone item SQL refused: a row becomes a dead letter; a dead letter SQL
        refuses (it should not: its bytes are bounded) is kept without its bytes."""
        reason = f"rejected by SQL: {first_line(exc)}"
        if rows:
            letter = dead_letter(rows[0][0], reason)
            log.warning("SQL refused %s %s alone: %s", letter.room_slug, letter.stream_id, reason)
            return [letter, *await self.write([], [letter], held, look)]
        [refused] = letters
        if not refused.raw:
            raise exc  # nothing left to cut away: SQL refuses any dead letter
        bare = DeadLetter(
            refused.stream,
            refused.stream_id,
            refused.room_slug,
            b"",
            f"{refused.reason}; its bytes were refused too ({reason})"[:2000],
            refused.delivery_count,
        )
        await self.write([], [bare], held, look)
        return []

    async def _transaction(
        self,
        rows: list[Row],
        letters: Sequence[DeadLetter],
        held: HeldScope | None = None,
        look: bool = True,
    ) -> list[DeadLetter]:
        """One transaction: the rows, a dead letter for each row that was a late copy of
        a stored client_id, the dead letters, then the changes (store/change_writes.py).
        Returns the late copies' letters. On the kept connection; once more on one the
        pool checks if the kept one fails as a lost connection would."""
        if not rows and not letters:
            return []
        conn, kept = await self._connection()
        try:
            return await self._transaction_on(conn, rows, letters, held, look)
        except SQL_FAILURES as exc:
            await self._discard()
            if not kept or classify(exc) is not Failure.UNKNOWN:
                raise
            log.info("the kept SQL connection failed (%s); trying a fresh one", first_line(exc))
        except BaseException:
            await self._discard()  # cancelled or stopped mid-statement: state unknown
            raise
        conn, _ = await self._connection()
        try:
            return await self._transaction_on(conn, rows, letters, held, look)
        except BaseException:
            await self._discard()
            raise

    async def _transaction_on(
        self,
        conn: AsyncConnection,
        rows: list[Row],
        letters: Sequence[DeadLetter],
        held: HeldScope | None,
        look: bool,
    ) -> list[DeadLetter]:
        message_rows = [row for row in rows if isinstance(row[1], ArchivedMessage)]
        changes = [change for _, change in rows if isinstance(change, ArchivedChange)]
        async with conn.begin():
            if self._max_bytes is None:
                self._max_bytes = await statement_limit(conn)
            found = await write_batch(
                conn,
                [m for _, m in message_rows if isinstance(m, ArchivedMessage)],
                letters,
                max_bytes=self._max_bytes,
            )
            late = [dead_letter(message_rows[d.index][0], late_copy_reason(d)) for d in found]
            await insert_dead_letters(conn, late, max_bytes=self._max_bytes)
            # After the messages: a change to a message of this very batch applies now.
            if held is None:
                applied = await apply_changes(conn, changes, look=look)
            elif held.only:
                applied = await apply_changes(conn, changes, held_in=held.rooms, look=look)
            else:
                applied = await apply_changes(conn, changes, held_not_in=held.rooms, look=look)
            self._failpoints.reach("after_insert_before_commit")
        if look:
            holdable = [(c.room_id, c.id) for c in changes if c.waits_for_its_message]
            self._looked(holdable, applied)
        else:
            self._sweeps.skipped(messages=bool(message_rows))
        return late

    def _looked(self, held: list[ChangeKey], applied: list[ChangeKey]) -> None:
        full = len(applied) >= HELD_PER_BATCH
        self._sweeps.looked(held, applied, full=full, now=time.monotonic())

    async def sweep(self) -> None:
        """A transaction that only looks for held changes to apply (an idle archiver, a
        drain's end: archiver/held_sweeps.py). SQL failing leaves them to the next look."""
        try:
            conn, _ = await self._connection()
            async with conn.begin():
                applied = await apply_held(conn)
        except SQL_FAILURES as exc:
            await self._discard()
            log.info("held changes not swept (%s): left to the next look", first_line(exc))
            return
        except BaseException:
            await self._discard()
            raise
        self._looked([], applied)

    async def _wait(self) -> None:
        stop = self._sql.stop
        if stop.is_set():
            raise Stopped
        await pause(stop, self._backoff.next_delay())
        if stop.is_set():
            raise Stopped
