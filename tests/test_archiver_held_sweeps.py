"""When the archiver's transactions look for held changes (archiver/held_sweeps.py):
pure decisions on a clock the test passes in."""

from __future__ import annotations

from chatroom.archiver.held_sweeps import HeldSweeps
from chatroom.domain.stream_ids import StreamId

EDIT = (1, StreamId(2_000, 0))


def test_a_batch_of_messages_alone_looks_at_most_every_second() -> None:
    sweeps = HeldSweeps(every_s=1.0)
    assert not sweeps.due(holds_changes=False, now=0.0)  # nothing committed yet
    sweeps.skipped(messages=True)  # their held changes may be another archiver's
    assert sweeps.due(holds_changes=False, now=0.1)
    sweeps.looked([], [], full=False, now=0.1)
    sweeps.skipped(messages=True)
    assert not sweeps.due(holds_changes=False, now=0.5)
    assert sweeps.due(holds_changes=False, now=1.1)
    # A transaction of dead letters only owes nothing.
    sweeps.looked([], [], full=False, now=1.1)
    sweeps.skipped(messages=False)
    assert not sweeps.due(holds_changes=False, now=5.0)
    assert not sweeps.pending(5.0)


def test_edits_and_deletes_look_at_once_and_until_they_are_seen_applied() -> None:
    sweeps = HeldSweeps(every_s=1.0, wait_s=60.0)
    assert sweeps.due(holds_changes=True, now=0.0)
    sweeps.looked([EDIT], [], full=False, now=0.0)  # its message is not archived yet
    # Every transaction looks while it waits: the one with its message applies it.
    assert sweeps.due(holds_changes=False, now=0.1)
    assert sweeps.pending(0.1) and not sweeps.sweep_due(0.5) and sweeps.sweep_due(1.0)
    sweeps.looked([], [EDIT], full=False, now=0.2)
    assert not sweeps.due(holds_changes=False, now=0.3)
    assert not sweeps.pending(0.3)


def test_a_change_waited_for_too_long_is_left_to_the_sweeps() -> None:
    """Another archiver may have applied it unseen: after `wait_s` this one stops looking
    in every transaction for it (the archiver that commits its message sweeps)."""
    sweeps = HeldSweeps(every_s=1.0, wait_s=60.0)
    sweeps.looked([EDIT], [], full=False, now=0.0)
    assert sweeps.due(holds_changes=False, now=59.0)
    assert not sweeps.due(holds_changes=False, now=61.0)
    assert not sweeps.pending(61.0)


def test_a_look_that_met_its_limit_looks_again_at_once() -> None:
    sweeps = HeldSweeps(every_s=1.0)
    sweeps.looked([], [EDIT], full=True, now=0.0)
    assert sweeps.due(holds_changes=False, now=0.01)
    assert sweeps.pending(0.01)
    sweeps.looked([], [], full=False, now=0.02)
    assert not sweeps.due(holds_changes=False, now=0.03)
