"""The checker's part for changes (issue 12): edits, deletes and reactions.

Pure, and independent of Chatroom's own code (it folds by itself):
- every acked change is kept in SQL once, under its acked id, as sent (`change_lost`,
  `ack_id_mismatch`, `corrupted`, `duplicated`); a failed one is not (`failed_but_stored`);
  no change that no client sent (`unexpected_rows`);
- the final state of every archived message (body, deleted, reactions) equals the fold
  of its original body and the changes SQL kept, in stream order
  (`change_state_mismatch`): an edit gives its body unless the message is deleted, a
  delete empties it for good, the last react or unreact of a (user, emoji) decides.
The message rows' body check (`corrupted`) compares with this folded body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.chaos.evidence import Evidence
from bench.chaos.ledger import ACKED, FAILED, Ledger, id_key

if TYPE_CHECKING:
    from bench.chaos.checker import Verdict

State = tuple[str, bool, frozenset[tuple[int, str]]]


def expected_states(ledger: Ledger, evidence: Evidence) -> dict[tuple[str, str], State]:
    """Each archived message's state folded from its sent body and the kept changes."""
    originals = {
        (s.room, s.user_id, s.client_id): s.body for s in ledger.sends.values() if s.kind == "send"
    }
    bodies: dict[tuple[str, str], str] = {}
    for row in evidence.rows:
        bodies[(row.room, row.id)] = originals.get((row.room, row.user_id, row.client_id), row.body)
    deleted: set[tuple[str, str]] = set()
    reactions: dict[tuple[str, str], dict[tuple[int, str], bool]] = {}
    for change in sorted(evidence.changes, key=lambda c: (c.room, id_key(c.id))):
        key = (change.room, change.target)
        if key not in bodies:
            continue
        if change.type == "edit" and key not in deleted and change.body is not None:
            bodies[key] = change.body
        elif change.type == "delete":
            deleted.add(key)
            bodies[key] = ""
        elif change.emoji is not None:
            reactions.setdefault(key, {})[(change.user_id, change.emoji)] = change.type == "react"
    return {
        key: (
            body,
            key in deleted,
            frozenset()
            if key in deleted
            else frozenset(k for k, on in reactions.get(key, {}).items() if on),
        )
        for key, body in bodies.items()
    }


def actual_states(evidence: Evidence) -> dict[tuple[str, str], State]:
    present: dict[tuple[str, str], set[tuple[int, str]]] = {}
    for room, message_id, user_id, emoji in evidence.reactions:
        present.setdefault((room, message_id), set()).add((user_id, emoji))
    found = {}
    for row in evidence.rows:
        key = (row.room, row.id)
        gone = key in evidence.deleted
        found[key] = (row.body, gone, frozenset() if gone else frozenset(present.get(key, ())))
    return found


def check_changes(
    ledger: Ledger, verdict: Verdict, evidence: Evidence, expected: dict[tuple[str, str], State]
) -> None:
    kept: dict[tuple[str, int, str], list[str]] = {}
    for change in evidence.changes:
        kept.setdefault((change.room, change.user_id, change.client_id), []).append(change.id)
    by_id = {(c.room, c.id): c for c in evidence.changes}
    sent = set()
    counts = {"changes_acked": 0, "changes_kept": len(evidence.changes)}
    for send in ledger.sends.values():
        if send.kind == "send":
            continue
        sent.add((send.room, send.user_id, send.client_id))
        stored = kept.get((send.room, send.user_id, send.client_id), [])
        at = send.first_sent_at
        where = {"client": send.client, "room": send.room, "client_id": send.client_id}
        if len(stored) > 1:
            verdict.add("duplicated", at, rows=stored, **where)
        if send.outcome == ACKED:
            counts["changes_acked"] += 1
            assert send.id is not None
            change = by_id.get((send.room, send.id))
            if change is None and stored:
                verdict.add("ack_id_mismatch", at, acked=send.id, stored=stored[0], **where)
            elif change is None:  # at its id's time: a power cut's window is by id
                lost_at = id_key(send.id)[0] / 1000
                verdict.add("change_lost", lost_at, id=send.id, change=send.kind, **where)
            elif (change.type, change.target, change.body if send.kind == "edit" else None) != (
                send.kind,
                send.target,
                send.body if send.kind == "edit" else None,
            ):
                verdict.add("corrupted", at, id=send.id, **where)
        elif send.outcome == FAILED and stored:
            verdict.add("failed_but_stored", at, id=stored[0], errors=send.errors, **where)
    for change in evidence.changes:
        if (change.room, change.user_id, change.client_id) not in sent:
            verdict.add(
                "unexpected_rows", id_key(change.id)[0] / 1000, room=change.room, id=change.id
            )
    actual = actual_states(evidence)
    changed = {(c.room, c.target) for c in evidence.changes}
    for key, state in expected.items():
        # A message no change names is checked by its body alone (checker.py: corrupted).
        if (key in changed or (key in actual and actual[key][1:] != (False, frozenset()))) and (
            actual.get(key) != state
        ):
            verdict.add(
                "change_state_mismatch",
                id_key(key[1])[0] / 1000,
                room=key[0],
                id=key[1],
                expected=[state[0][:80], state[1], sorted(state[2])],
                found=None
                if key not in actual
                else [actual[key][0][:80], actual[key][1], sorted(actual[key][2])],
            )
    verdict.facts.update(counts)
