"""What an ack is said to survive, for each Redis persistence setup (pure: no Redis)."""

from __future__ import annotations

import pytest

from chatroom.settings import AckDurability
from chatroom.streams.persistence import PersistenceReport, fsync_refusal

WRITE, FSYNC = AckDurability.write, AckDurability.fsync


def report(
    mode: AckDurability, *, appendonly: bool = True, fsync: str = "everysec"
) -> PersistenceReport:
    return PersistenceReport(appendonly, fsync, "noeviction", mode)


@pytest.mark.parametrize(
    ("setup", "durable", "says"),
    [
        (report(WRITE), False, "NOT durable against a crash"),
        (report(WRITE, fsync="no"), False, "up to about 30 s"),
        (report(WRITE, fsync="always"), True, "loses no acknowledged message"),
        (report(WRITE, appendonly=False), False, "loses every acknowledged message"),
        (report(FSYNC, fsync="always"), True, "fsync (appendfsync always)"),
        # CONFIG changed under a running node: said, until it is set back.
        (report(FSYNC), False, "NOT durable against a crash"),
    ],
)
def test_the_guarantee_is_said_plainly(setup: PersistenceReport, durable: bool, says: str) -> None:
    assert setup.durable_against_kill is durable
    assert says in setup.guarantee
    assert setup.as_json()["guarantee"] == setup.guarantee


def test_everysec_is_never_certified_durable_for_write_acks() -> None:
    assert not report(WRITE).durable_against_kill
    assert "1-2 s" in report(WRITE).guarantee


@pytest.mark.parametrize(
    ("setup", "fix"),
    [
        (report(FSYNC, appendonly=False), "appendonly yes"),
        (report(FSYNC), "set appendfsync always"),
        (report(FSYNC, fsync="no"), "set appendfsync always"),
    ],
)
def test_fsync_that_cannot_be_honoured_is_refused_with_the_fix(
    setup: PersistenceReport, fix: str
) -> None:
    refusal = fsync_refusal(setup)
    assert refusal is not None and fix in refusal
    assert "CHATROOM_ACK_DURABILITY=write" in refusal


def test_fsync_that_can_be_honoured_is_not_refused() -> None:
    assert fsync_refusal(report(FSYNC, fsync="always")) is None
    assert fsync_refusal(report(WRITE, appendonly=False)) is None  # write never refuses
