"""Pure batching decisions: flush timing, triage of entries, retry halves, chunk sizes."""

from __future__ import annotations

import json

from chatroom.archiver.batching import (
    DELETED_REASON,
    BatchClock,
    Delivery,
    split_for_retry,
    too_many_deliveries,
    triage,
)
from chatroom.domain.stream_ids import StreamId
from chatroom.store.archive_writes import ArchivedMessage, chunk_bounds


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
    assert "delivered 9 times" in reasons[ids[4]]
    assert [e.id for e in plan.deleted] == [ids[2]]


def test_delivery_limit_and_raw_bytes() -> None:
    assert too_many_deliveries(5, 5) is None
    assert too_many_deliveries(6, 5) == "delivered 6 times without being archived (limit 5)"
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
