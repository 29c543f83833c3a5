"""The archiver's crash points for the fault tests."""

from __future__ import annotations

import pytest

from chatroom.archiver.failpoints import Failpoints, UnknownFailpoint


def test_failpoints_fire_on_the_nth_time_only() -> None:
    points = Failpoints.from_env(
        {"CHATROOM_FAILPOINT": "after_read", "CHATROOM_FAILPOINT_AFTER": "3"}
    )
    assert [points.should_fire("after_read") for _ in range(4)] == [False, False, True, False]
    assert not points.should_fire("after_commit_before_ack")
    assert Failpoints.from_env({}).point is None
    with pytest.raises(UnknownFailpoint, match="after_lunch"):
        Failpoints.from_env({"CHATROOM_FAILPOINT": "after_lunch"})
    with pytest.raises(UnknownFailpoint, match="whole number"):
        Failpoints.from_env({"CHATROOM_FAILPOINT": "after_read", "CHATROOM_FAILPOINT_AFTER": "x"})
