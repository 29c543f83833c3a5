"""The checker: what the clients were told and saw, against what SQL and Redis hold.

Pure: the ledger, the evidence and the injected poison in, a `Verdict` out. Each
violation carries the wall-clock moment it concerns (the message's id time or its send),
so that the report can name the faults around it.

What is proved (PRODUCT.md section 4):
- every acked message is in SQL once, under its acked id, with its exact body, client_id
  and author (`lost`; `unarchived`: still in its stream after the drain;
  `ack_id_mismatch`, `corrupted`); every unknown one at most once;
  every failed one not at all (`failed_but_stored`); no row that no client sent
  (`unexpected_rows`), no send stored twice (`duplicated`);
- per room, what each client received live is in stream id order (`out_of_order`) with
  no id twice (`duplicated` deliveries), and gapless: every SQL message between the
  client's first subscription and the last id it saw was received live, by replay, or by
  the HTTP reload after a `resync` (`gaps`); it caught up by the end (`stalled`);
- a `resync` only after Redis may have lost a stream's tail, or while SQL could not give
  a node what the archiver trimmed before it read it (`unjustified_resync`);
- nothing pending or undelivered in any stream (`backlog_left`);
- changes (edits, deletes, reactions): see changes_check.py, down to the final state of
  every message equal to the fold of the changes kept, in stream order;
- dead letters are only the injected poison: a valid message dead-lettered is
  `dead_letters_valid`; a resend appended again after Redis forgot its client_id is a
  late copy (dead-lettered by design, counted apart); poison never becomes a row and is
  dead-lettered (`poison_archived`, `poison_missing`).
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from bench.chaos.changes_check import State, check_changes, expected_states
from bench.chaos.evidence import DeadLetter, Evidence, Row
from bench.chaos.ledger import ACKED, FAILED, UNKNOWN, Ledger, RoomView, id_key

EXAMPLES_PER_KIND = 20
# A node finds a room's loss when its fan-out next reads that room, one room after the
# other, each asking SQL for its newest id: under a burst that took 32 s for 10 rooms.
RESYNC_GRACE_S = 60.0


@dataclass
class Violation:
    kind: str
    at: float  # wall clock seconds
    detail: dict[str, Any]


@dataclass
class Verdict:
    outcomes: dict[str, int]
    counts: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, kind: str, at: float, **detail: Any) -> None:
        self.counts[kind] += 1
        self.violations.append(Violation(kind, at, detail))

    def count(self, kind: str) -> int:
        return self.counts.get(kind, 0)

    @property
    def clean(self) -> bool:
        return not self.violations


def _at(message_id: str) -> float:
    return id_key(message_id)[0] / 1000


def check(
    ledger: Ledger,
    evidence: Evidence,
    poison: dict[tuple[str, str], str],
    redis_losses: Sequence[tuple[float, float]] = (),
    unsynced: Sequence[tuple[float, float]] = (),
    sql_outages: Sequence[tuple[float, float]] = (),
) -> Verdict:
    """`redis_losses`: (start, end) of the faults that may lose a stream's tail (Redis
    killed or its AOF cut); `sql_outages`: of those that keep SQL from answering (paused,
    unreachable), when a node that fell behind the trimmer cannot fill the gap from SQL
    and says `resync` instead (hub/bus.py). A `resync` is justified only within
    `RESYNC_GRACE_S` of one of either.
    `unsynced`: the moments a power cut could take back under the ack mode in force
    (write acks on `everysec`: the last ~2 s before each cut), see `_allow_unsynced`."""
    verdict = Verdict(outcomes=ledger.outcomes())
    by_id = {(r.room, r.id): r for r in evidence.rows}
    by_sender: dict[tuple[str, int, str], list[Row]] = {}
    for row in evidence.rows:
        by_sender.setdefault((row.room, row.user_id, row.client_id), []).append(row)
    in_streams = {(room, i) for room, state in evidence.streams.items() for i in state.ids}
    expected = expected_states(ledger, evidence)
    _check_sends(ledger, verdict, by_id, by_sender, in_streams, expected)
    check_changes(ledger, verdict, evidence, expected)
    _check_rows(ledger, verdict, evidence.rows, poison)
    room_ids = _room_sequences(evidence.rows)
    _check_deliveries(ledger, verdict, room_ids, set(by_id))
    _check_resyncs(ledger, verdict, [*redis_losses, *sql_outages])
    _check_streams(evidence, verdict)
    _check_dead_letters(
        ledger, verdict, evidence.dead_letters, by_id, by_sender, poison, in_streams
    )
    _allow_unsynced(verdict, unsynced)
    return verdict


def _allow_unsynced(verdict: Verdict, windows: Sequence[tuple[float, float]]) -> None:
    """Write acks on `appendfsync everysec` are stated as not durable against a power
    cut: up to ~2 s of acked messages may go (persistence.py). A message of such a window
    lost (a change too), or missed live because Redis lost it after the archiver had it,
    is that stated loss: counted apart (`lost_unsynced`, `change_lost_unsynced`,
    `gaps_unsynced`), not as a violation."""
    if not windows:
        return
    kept = []
    for violation in verdict.violations:
        allowed = violation.kind in ("lost", "change_lost", "gaps") and any(
            start <= violation.at <= end for start, end in windows
        )
        if allowed:
            verdict.counts[violation.kind] -= 1
            key = f"{violation.kind}_unsynced"
            verdict.facts[key] = verdict.facts.get(key, 0) + 1
        else:
            kept.append(violation)
    verdict.violations = kept


def _check_sends(
    ledger: Ledger,
    verdict: Verdict,
    by_id: dict[tuple[str, str], Row],
    by_sender: dict[tuple[str, int, str], list[Row]],
    in_streams: set[tuple[str, str]],
    expected: dict[tuple[str, str], State],
) -> None:
    stored_unknown = 0
    for send in ledger.sends.values():
        if send.kind != "send":  # a change: changes_check.py
            continue
        stored = by_sender.get((send.room, send.user_id, send.client_id), [])
        where = {"client": send.client, "room": send.room, "client_id": send.client_id}
        if len(stored) > 1:
            verdict.add("duplicated", send.first_sent_at, rows=[r.id for r in stored], **where)
        outcome = send.outcome
        if outcome == ACKED:
            assert send.id is not None
            row = by_id.get((send.room, send.id))
            if row is None and stored:
                verdict.add(
                    "ack_id_mismatch", _at(send.id), acked=send.id, stored=stored[0].id, **where
                )
                continue
            if row is None and (send.room, send.id) in in_streams:
                verdict.add("unarchived", _at(send.id), id=send.id, **where)
                continue
            if row is None:
                verdict.add("lost", _at(send.id), id=send.id, attempts=send.attempts, **where)
                continue
            # The body the changes SQL kept left it (the sent body without any).
            body = expected[(row.room, row.id)][0]
            if (row.user_id, row.client_id, row.body) != (send.user_id, send.client_id, body):
                verdict.add("corrupted", _at(send.id), id=send.id, **where)
        elif outcome == UNKNOWN:
            if stored:
                stored_unknown += 1
                if stored[0].body != expected[(stored[0].room, stored[0].id)][0]:
                    verdict.add("corrupted", _at(stored[0].id), id=stored[0].id, **where)
        elif outcome == FAILED and stored:
            verdict.add(
                "failed_but_stored",
                send.first_sent_at,
                id=stored[0].id,
                errors=send.errors,
                **where,
            )
    verdict.facts["unknown_stored"] = stored_unknown


def _check_rows(
    ledger: Ledger, verdict: Verdict, rows: list[Row], poison: dict[tuple[str, str], str]
) -> None:
    sent = {(s.room, s.user_id, s.client_id) for s in ledger.sends.values()}
    for row in rows:
        if (row.room, row.id) in poison:
            verdict.add("poison_archived", _at(row.id), room=row.room, id=row.id)
        elif (row.room, row.user_id, row.client_id) not in sent:
            verdict.add("unexpected_rows", _at(row.id), room=row.room, id=row.id)
    # Insert order against stream order, per room: informative (two archivers may write
    # one room's batches in either order), not an invariant.
    inversions = 0
    for ids in _by_room(rows).values():
        ordered = sorted(ids, key=lambda r: r.pk)
        keys = [id_key(r.id) for r in ordered]
        inversions += sum(1 for a, b in itertools.pairwise(keys) if b < a)
    verdict.facts["sql_insert_order_inversions"] = inversions


def _by_room(rows: list[Row]) -> dict[str, list[Row]]:
    found: dict[str, list[Row]] = {}
    for row in rows:
        found.setdefault(row.room, []).append(row)
    return found


def _room_sequences(rows: list[Row]) -> dict[str, list[tuple[int, int]]]:
    return {
        room: sorted(id_key(r.id) for r in room_rows) for room, room_rows in _by_room(rows).items()
    }


def _check_deliveries(
    ledger: Ledger,
    verdict: Verdict,
    room_ids: dict[str, list[tuple[int, int]]],
    in_sql: set[tuple[str, str]],
) -> None:
    resyncs = 0
    not_archived: set[tuple[str, str]] = set()
    for client in ledger.clients.values():
        for room, view in client.rooms.items():
            resyncs += len(view.resyncs)
            _check_order(verdict, client.name, room, view)
            _check_gaps(verdict, client.name, room, view, room_ids.get(room, []))
            for message_id, _ in view.received:
                if (room, message_id) not in in_sql:
                    not_archived.add((room, message_id))
    verdict.facts["resyncs"] = resyncs
    unfinished = Counter(
        resync.last_error or "no answer yet"
        for client in ledger.clients.values()
        for view in client.rooms.values()
        for resync in view.resyncs
        if not resync.done
    )
    verdict.facts["reloads_unfinished"] = dict(unfinished)  # by the last attempt's error
    verdict.facts["delivered_not_in_sql"] = len(not_archived)


def _check_resyncs(ledger: Ledger, verdict: Verdict, causes: list[tuple[float, float]]) -> None:
    for client in ledger.clients.values():
        for room, view in client.rooms.items():
            for resync in view.resyncs:
                if not any(start <= resync.at <= end + RESYNC_GRACE_S for start, end in causes):
                    verdict.add(
                        "unjustified_resync",
                        resync.at,
                        client=client.name,
                        room=room,
                        cursor=resync.cursor,
                    )


def _check_order(verdict: Verdict, client: str, room: str, view: RoomView) -> None:
    seen: set[str] = set()
    newest: tuple[int, int] | None = None
    for message_id, epoch in view.received:
        key = id_key(message_id)
        if message_id in seen:
            verdict.add(
                "duplicated",
                _at(message_id),
                client=client,
                room=room,
                id=message_id,
                delivery=True,
                connection=epoch,
            )
        elif newest is not None and key < newest:
            verdict.add(
                "out_of_order",
                _at(message_id),
                client=client,
                room=room,
                id=message_id,
                connection=epoch,
            )
        seen.add(message_id)
        newest = key if newest is None or key > newest else newest


def _check_gaps(
    verdict: Verdict, client: str, room: str, view: RoomView, ids: list[tuple[int, int]]
) -> None:
    got = {id_key(i) for i, _ in view.received} | {id_key(i) for i in view.reloaded}
    if view.start is None or not got:
        return
    start, end = id_key(view.start), max(got)
    low, high = bisect.bisect_right(ids, start), bisect.bisect_right(ids, end)
    for key in ids[low:high]:
        if key not in got:
            message_id = f"{key[0]}-{key[1]}"
            verdict.add("gaps", key[0] / 1000, client=client, room=room, id=message_id)
    if ids and max(got) < ids[-1]:
        behind = len(ids) - bisect.bisect_right(ids, max(got))
        verdict.add("stalled", max(got)[0] / 1000, client=client, room=room, behind=behind)


def _check_streams(evidence: Evidence, verdict: Verdict) -> None:
    for room, state in evidence.streams.items():
        if state.pending or state.undelivered:
            verdict.add(
                "backlog_left",
                0.0,
                room=room,
                pending=state.pending,
                undelivered=state.undelivered,
            )


def _check_dead_letters(
    ledger: Ledger,
    verdict: Verdict,
    letters: list[DeadLetter],
    by_id: dict[tuple[str, str], Row],
    by_sender: dict[tuple[str, int, str], list[Row]],
    poison: dict[tuple[str, str], str],
    in_streams: set[tuple[str, str]],
) -> None:
    acked = {(s.room, s.id): s for s in ledger.sends.values() if s.id is not None}
    ours = {(s.room, s.user_id, s.client_id): s for s in ledger.sends.values()}
    lettered = {(d.room, d.stream_id) for d in letters}
    late_copies = 0
    reasons: Counter[str] = Counter()
    for letter in letters:
        key = (letter.room, letter.stream_id)
        reasons[letter.reason.split(":")[0][:60]] += 1
        if key in poison:
            continue
        sender = _sender(letter)
        send = acked.get(key) or (ours.get((letter.room, *sender)) if sender else None)
        if send is None:
            verdict.add(
                "unexpected_dead_letters",
                _at(letter.stream_id),
                room=letter.room,
                id=letter.stream_id,
                reason=letter.reason[:120],
            )
            continue
        elsewhere = [
            r
            for r in by_sender.get((letter.room, send.user_id, send.client_id), [])
            if r.id != letter.stream_id
        ]
        if elsewhere and key not in by_id:
            late_copies += 1  # a resend appended again: SQL holds the first (by design)
            continue
        verdict.add(
            "dead_letters_valid",
            _at(letter.stream_id),
            room=letter.room,
            id=letter.stream_id,
            client=send.client,
            client_id=send.client_id,
            outcome=send.outcome,
            also_in_sql=key in by_id,
            reason=letter.reason[:120],
            deliveries=letter.deliveries,
        )
    for (room, entry_id), kind in poison.items():
        key = (room, entry_id)
        if key not in lettered and key not in by_id and key not in in_streams:
            verdict.add("poison_missing", _at(entry_id), room=room, id=entry_id, poison=kind)
    verdict.facts["dead_letters"] = len(letters)
    verdict.facts["dead_letters_poison"] = sum(
        1 for d in letters if (d.room, d.stream_id) in poison
    )
    verdict.facts["late_copies_dead_lettered"] = late_copies
    verdict.facts["dead_letter_reasons"] = dict(reasons.most_common(20))


def _sender(letter: DeadLetter) -> tuple[int, str] | None:
    """(user id, client_id) of a dead letter that is a well-formed message envelope."""
    try:
        event = orjson.loads(letter.raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("user"), dict):
        return None
    user_id, client_id = event["user"].get("id"), event.get("client_id")
    if isinstance(user_id, int) and isinstance(client_id, str):
        return user_id, client_id
    return None
