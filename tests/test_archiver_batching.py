"""Pure batching decisions: flush timing, triage of entries, retry halves, chunk sizes."""

from __future__ import annotations

import hashlib
import json

import pytest

from chatroom.archiver import batching
from chatroom.archiver.batching import (
    DELETED_REASON,
    BatchClock,
    Delivery,
    is_suspect,
    split_for_retry,
    suspects_in_order,
    triage,
)
from chatroom.domain.events import decode_event as real_decode
from chatroom.domain.stream_ids import StreamId
from chatroom.store.archive_writes import (
    DEAD_LETTER_RAW_MAX,
    ArchivedMessage,
    DeadLetter,
    chunk_bounds,
)


def _event(body: str = "hi", room: str = "lobby") -> dict[bytes, bytes]:
    envelope = {
        "v": 1,
        "type": "message",
        "room": room,
        "user": {"id": 7, "username": "alice", "display_name": "Alice"},
        "body": body,
        "client_id": "c1",
    }
    return {b"event": json.dumps(envelope).encode()}


def test_clock_flushes_at_count_or_after_the_wait() -> None:
    clock = BatchClock(max_entries=10, max_wait_ms=100, idle_block_ms=1000)
    assert clock.block_ms(0) == 1000 and not clock.due(0)
    clock.add(4, now_ms=50)
    assert clock.block_ms(80) == 70 and not clock.due(80) and clock.room_left() == 6
    assert clock.due(150)
    assert clock.block_ms(10_000) == 1  # never BLOCK 0, which would wait forever
    clock.add(6, now_ms=60)
    assert clock.full() and clock.due(60)
    clock.reset()
    assert clock.count == 0 and clock.block_ms(0) == 1000


def test_an_empty_read_does_not_start_the_clock() -> None:
    clock = BatchClock(max_entries=10, max_wait_ms=100, idle_block_ms=500)
    clock.add(0, now_ms=5)
    assert clock.first_at_ms is None and not clock.due(10_000)


def test_triage_sorts_each_entry_on_its_own() -> None:
    ids = [StreamId(1, i) for i in range(6)]
    entries = [
        Delivery("lobby", ids[0], _event("fine")),
        Delivery("lobby", ids[1], {b"event": b"{oops"}),
        Delivery("lobby", ids[2], {}),
        Delivery("nowhere", ids[3], _event(room="nowhere")),
        Delivery("lobby", ids[4], _event("again"), deliveries=9),
        Delivery("lobby", ids[5], _event("last")),
    ]
    plan = triage(entries, {"lobby": 1}, max_deliveries=5)
    assert [(e.id, room_id, ev.body) for e, room_id, ev in plan.rows] == [
        (ids[0], 1, "fine"),
        (ids[5], 1, "last"),
    ]
    reasons = {e.id: reason for e, reason in plan.dead}
    assert reasons[ids[1]].startswith("invalid event: not JSON")
    assert reasons[ids[2]] == DELETED_REASON
    assert "unknown room 'nowhere'" in reasons[ids[3]]
    assert [e.id for e in plan.deleted] == [ids[2]]
    # Delivered 9 times: a suspect to try alone, never a dead letter for its count.
    assert [e.id for e in plan.suspects] == [ids[4]] and ids[4] not in reasons


def test_a_surprise_while_triaging_one_entry_dead_letters_that_entry_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def decode(room: str, fields: dict[bytes, bytes]) -> object:
        if fields[b"event"].startswith(b"boom"):
            raise LookupError("surprise")
        return real_decode(room, fields)

    monkeypatch.setattr(batching, "decode_event", decode)
    entries = [
        Delivery("lobby", StreamId(1, 0), _event("fine")),
        Delivery("lobby", StreamId(1, 1), {b"event": b"boom"}),
        Delivery("lobby", StreamId(1, 2), _event("also fine")),
    ]
    plan = triage(entries, {"lobby": 1}, max_deliveries=5)
    assert [e.id.seq for e, _, _ in plan.rows] == [0, 2]
    assert [(e.id.seq, reason) for e, reason in plan.dead] == [
        (1, "could not be triaged: LookupError: surprise")
    ]


def test_suspects_are_tried_least_tried_first() -> None:
    tried = [
        Delivery("lobby", StreamId(1, i), {b"event": b"x"}, d) for i, d in enumerate((9, 7, 7))
    ]
    assert [e.id.seq for e in suspects_in_order(tried)] == [1, 2, 0]


def test_delivery_limit_and_raw_bytes() -> None:
    entry = Delivery("lobby", StreamId(1, 0), {b"event": b"x"}, deliveries=5)
    assert not is_suspect(entry, 5) and is_suspect(entry, 4)
    entry = Delivery("lobby", StreamId(1, 0), {b"b": b"2", b"a": b"1"})
    assert entry.raw == b"a=1\nb=2"
    assert Delivery("lobby", StreamId(1, 0), {b"event": b"\xff"}).raw == b"\xff"


def test_split_for_retry_halves() -> None:
    assert split_for_retry([1, 2, 3, 4, 5]) == ([1, 2], [3, 4, 5])
    assert split_for_retry([1]) == ([], [1])


def test_chunks_respect_rows_and_bytes() -> None:
    assert chunk_bounds([10] * 5, max_rows=2, max_bytes=1000) == [
        range(0, 2),
        range(2, 4),
        range(4, 5),
    ]
    assert chunk_bounds([40, 40, 40, 10], max_rows=100, max_bytes=90) == [
        range(0, 2),
        range(2, 4),
    ]
    # A row over the limit goes alone; the server decides whether it fits at all.
    assert chunk_bounds([5, 500, 5], max_rows=100, max_bytes=100) == [
        range(0, 1),
        range(1, 2),
        range(2, 3),
    ]
    assert chunk_bounds([], max_rows=10, max_bytes=10) == []


def test_row_size_estimate_bounds_escaping() -> None:
    message = ArchivedMessage(1, StreamId(1, 0), 7, "c1", "é" * 100)  # 200 UTF-8 bytes
    assert message.statement_bytes() >= 2 * 200


def test_a_dead_letter_keeps_bounded_bytes_and_says_what_it_cut() -> None:
    small = DeadLetter.of_entry("s", "1-0", "lobby", b"abc", "bad", 1)
    assert (small.raw, small.reason) == (b"abc", "bad")
    raw = b"o" * (17 * 1024 * 1024)
    big = DeadLetter.of_entry("s", "1-1", "lobby", raw, "invalid event: not JSON", 1)
    assert big.raw == raw[:DEAD_LETTER_RAW_MAX]
    assert f"entry of {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()}" in big.reason
    assert big.statement_bytes() < 1024 * 1024  # fits any max_allowed_packet
