"""The chaos campaign's checker (bench/chaos/checker.py): pure logic on made-up records.

The campaign itself runs real processes (`make chaos-short`); these tests pin down what
the checker calls a violation, so that a campaign's verdict can be trusted.
"""

from __future__ import annotations

import orjson
from bench.chaos.checker import check
from bench.chaos.evidence import ChangeRow, DeadLetter, Evidence, Row, StreamState
from bench.chaos.ledger import ClientLog, Ledger, Resync, RoomView, Send

ROOM = "lobby"
T0 = 1_700_000_000  # seconds; ids below are T0 * 1000 + n


def mid(n: int) -> str:
    return f"{T0 * 1000 + n}-0"


def send(ledger: Ledger, n: int, *, acked: bool = True, errors: tuple[str, ...] = ()) -> Send:
    found = Send("c0", 7, ROOM, f"c0-{n}", f"c0-{n} héllo 🙂", first_sent_at=T0 + n / 1000)
    found.attempts = 1
    if acked:
        found.id = mid(n)
    found.errors = list(errors)
    ledger.sends[("c0", found.client_id)] = found
    return found


def row(n: int, *, body: str | None = None) -> Row:
    return Row(ROOM, mid(n), 7, f"c0-{n}", f"c0-{n} héllo 🙂" if body is None else body, pk=n)


def viewer(ledger: Ledger, start: int, received: list[int], **extra: object) -> RoomView:
    view = RoomView(start=mid(start), received=[(mid(n), 1) for n in received], **extra)  # type: ignore[arg-type]
    ledger.clients["c1"] = ClientLog("c1", 8, rooms={ROOM: view})
    return view


def kinds(
    ledger: Ledger,
    evidence: Evidence,
    poison: dict[tuple[str, str], str] | None = None,
    redis_losses: list[tuple[float, float]] | None = None,
    sql_outages: list[tuple[float, float]] | None = None,
) -> dict[str, int]:
    verdict = check(ledger, evidence, poison or {}, redis_losses or [], (), sql_outages or ())
    return dict(verdict.counts)


def test_a_clean_run_has_no_violation() -> None:
    ledger = Ledger()
    for n in (1, 2, 3):
        send(ledger, n)
    viewer(ledger, 0, [1, 2, 3])
    verdict = check(ledger, Evidence(rows=[row(1), row(2), row(3)]), {})
    assert verdict.clean
    assert verdict.outcomes == {"acked": 3, "unknown": 0, "failed": 0}


def test_an_acked_message_in_neither_sql_nor_its_stream_is_lost() -> None:
    ledger = Ledger()
    send(ledger, 1)
    assert kinds(ledger, Evidence(rows=[])) == {"lost": 1}


def test_under_write_acks_what_a_power_cut_took_back_is_counted_apart() -> None:
    # Messages 1 and 2 were acked; a power cut took back the last unsynced second (write
    # acks on everysec: the stated loss). 2 was archived before, so SQL has it but the
    # client, whose node read past the cut, never got it live.
    # A delete of message 3, acked as id 2.5, went with them.
    ledger = Ledger()
    send(ledger, 1)
    send(ledger, 2)
    send(ledger, 3)
    delete = Send("c0", 7, ROOM, "c0-del", "", first_sent_at=T0 - 5.0, kind="delete")
    delete.target, delete.attempts, delete.id = mid(3), 1, f"{T0 * 1000 + 2}-1"
    ledger.sends[("c0", delete.client_id)] = delete
    viewer(ledger, 0, [3])
    cut = (T0 + 0.0005, T0 + 0.0025)  # ids 1, 2 and 2-1 lie in it
    verdict = check(ledger, Evidence(rows=[row(2), row(3)]), {}, [], [cut])
    assert verdict.clean
    assert verdict.facts["lost_unsynced"] == 1 and verdict.facts["gaps_unsynced"] == 1
    assert verdict.facts["change_lost_unsynced"] == 1
    # The same outside any cut's window: violations.
    found = kinds(ledger, Evidence(rows=[row(2), row(3)]))
    assert found == {"lost": 1, "gaps": 1, "change_lost": 1}


def test_an_acked_message_still_in_its_stream_is_unarchived_not_lost() -> None:
    ledger = Ledger()
    send(ledger, 1)
    streams = {ROOM: StreamState(length=1, undelivered=1, ids={mid(1)})}
    assert kinds(ledger, Evidence(rows=[], streams=streams)) == {
        "unarchived": 1,
        "backlog_left": 1,
    }


def test_an_acked_message_stored_under_another_id_or_with_other_bytes_is_reported() -> None:
    ledger = Ledger()
    send(ledger, 1)
    send(ledger, 2)
    moved = Row(ROOM, mid(9), 7, "c0-1", "c0-1 héllo 🙂", pk=1)
    found = kinds(ledger, Evidence(rows=[moved, row(2, body="c0-2 hello")]))
    assert found == {"ack_id_mismatch": 1, "corrupted": 1}


def test_a_failed_send_found_in_sql_is_reported_and_an_unknown_one_may_be_there() -> None:
    ledger = Ledger()
    send(ledger, 1, acked=False, errors=("unavailable",))
    unknown = send(ledger, 2, acked=False)
    unknown.lost_answers = 1
    verdict = check(ledger, Evidence(rows=[row(1), row(2)]), {})
    assert dict(verdict.counts) == {"failed_but_stored": 1}
    assert verdict.facts["unknown_stored"] == 1


def test_a_row_no_client_sent_is_unexpected() -> None:
    stranger = Row(ROOM, mid(1), 99, "x-1", "who?", pk=1)
    assert kinds(Ledger(), Evidence(rows=[stranger])) == {"unexpected_rows": 1}


def test_a_message_missed_between_a_clients_first_and_last_id_is_a_gap() -> None:
    ledger = Ledger()
    for n in (1, 2, 3, 4, 5):
        send(ledger, n)
    viewer(ledger, 1, [2, 4])  # subscribed after 1; missed 3; 5 came after its last
    found = kinds(ledger, Evidence(rows=[row(n) for n in (1, 2, 3, 4, 5)]))
    assert found == {"gaps": 1, "stalled": 1}


def test_messages_reloaded_after_a_resync_fill_the_gap_and_the_resync_needs_a_cause() -> None:
    """A resync is justified by a Redis loss (the node delivered what Redis lost) or an
    SQL outage (the node could not fill from SQL what was trimmed before it read it),
    within the grace after either; by nothing else."""
    ledger = Ledger()
    for n in (1, 2, 3):
        send(ledger, n)
    resync = Resync(at=T0 + 1.0, cursor=mid(1), reloaded=1)
    viewer(ledger, 0, [1, 3], reloaded={mid(2)}, resyncs=[resync])
    rows = [row(n) for n in (1, 2, 3)]
    assert kinds(ledger, Evidence(rows=rows)) == {"unjustified_resync": 1}
    assert kinds(ledger, Evidence(rows=rows), redis_losses=[(T0 - 5.0, T0 - 1.0)]) == {}
    assert kinds(ledger, Evidence(rows=rows), sql_outages=[(T0 - 5.0, T0 - 1.0)]) == {}
    long_ago = [(T0 - 100.0, T0 - 60.0)]
    assert kinds(ledger, Evidence(rows=rows), sql_outages=long_ago) == {"unjustified_resync": 1}


def test_a_message_received_twice_is_duplicated_and_one_going_back_is_out_of_order() -> None:
    ledger = Ledger()
    for n in (1, 2, 3):
        send(ledger, n)
    viewer(ledger, 0, [1, 2, 2, 3, 1])
    found = kinds(ledger, Evidence(rows=[row(n) for n in (1, 2, 3)]))
    assert found == {"duplicated": 2}  # 2 again, and 1 again (seen: a duplicate first)
    viewer(ledger, 0, [1, 3, 2])
    assert kinds(ledger, Evidence(rows=[row(n) for n in (1, 2, 3)])) == {"out_of_order": 1}


def _letter(n: int, raw: bytes, reason: str = "invalid event") -> DeadLetter:
    return DeadLetter(ROOM, mid(n), reason, raw, deliveries=6)


def test_dead_letters_of_poison_are_expected_and_of_valid_messages_are_not() -> None:
    ledger = Ledger()
    send(ledger, 1)
    event = {"user": {"id": 7}, "client_id": "c0-1"}
    letters = [_letter(1, orjson.dumps(event), "delivered 6 times"), _letter(2, b"{oops")]
    poison = {(ROOM, mid(2)): "not_json", (ROOM, mid(3)): "huge_entry"}
    found = kinds(ledger, Evidence(rows=[], dead_letters=letters), poison=poison)
    # c0-1 is dead-lettered, hence not in SQL: lost too; poison 3 vanished altogether.
    assert found == {"dead_letters_valid": 1, "lost": 1, "poison_missing": 1}


def test_a_late_copy_of_a_resend_is_dead_lettered_by_design() -> None:
    ledger = Ledger()
    resent = send(ledger, 5)  # acked under 5; SQL holds the first append, 1
    event = {"user": {"id": 7}, "client_id": resent.client_id}
    first = Row(ROOM, mid(1), 7, resent.client_id, resent.body, pk=1)
    letters = [_letter(5, orjson.dumps(event), "duplicate client_id of " + mid(1))]
    verdict = check(ledger, Evidence(rows=[first], dead_letters=letters), {})
    assert dict(verdict.counts) == {"ack_id_mismatch": 1}
    assert verdict.facts["late_copies_dead_lettered"] == 1


def change(ledger: Ledger, n: int, kind: str, target: int, **extra: object) -> Send:
    found = Send("c0", 7, ROOM, f"c0-{n}", str(extra.get("body", "")), first_sent_at=T0 + n / 1000)
    found.attempts, found.id = 1, mid(n)
    found.kind, found.target = kind, mid(target)
    found.emoji = extra.get("emoji")  # type: ignore[assignment]
    ledger.sends[("c0", found.client_id)] = found
    return found


def kept(n: int, kind: str, target: int, **extra: object) -> ChangeRow:
    body, emoji = extra.get("body"), extra.get("emoji")
    return ChangeRow(ROOM, mid(n), kind, mid(target), 7, f"c0-{n}", body, emoji)  # type: ignore[arg-type]


def test_changes_fold_into_the_final_state_and_each_acked_one_must_be_kept() -> None:
    ledger = Ledger()
    for n in (1, 2):
        send(ledger, n)
    change(ledger, 3, "edit", 1, body="new")
    change(ledger, 4, "react", 1, emoji="👍")
    change(ledger, 5, "delete", 2)
    change(ledger, 6, "edit", 2, body="too late")
    changes = [
        kept(3, "edit", 1, body="new"),
        kept(4, "react", 1, emoji="👍"),
        kept(5, "delete", 2),
        kept(6, "edit", 2, body="too late"),
    ]
    rows = [row(1, body="new"), row(2, body="")]
    evidence = Evidence(
        rows=rows,
        changes=changes,
        deleted={(ROOM, mid(2))},
        reactions={(ROOM, mid(1), 7, "👍")},
    )
    verdict = check(ledger, evidence, {})
    assert verdict.clean, verdict.violations
    assert verdict.facts["changes_acked"] == 4
    # The edit lost: SQL still has the old body; and the reaction was never applied.
    lost = Evidence(rows=[row(1), row(2, body="")], changes=changes[1:], deleted={(ROOM, mid(2))})
    assert kinds(ledger, lost) == {"change_lost": 1, "change_state_mismatch": 1}
    # An edit applied after the delete would resurrect a body.
    resurrected = Evidence(
        rows=[row(1, body="new"), row(2, body="too late")],
        changes=changes,
        reactions={(ROOM, mid(1), 7, "👍")},
    )
    assert kinds(ledger, resurrected) == {"corrupted": 1, "change_state_mismatch": 1}
