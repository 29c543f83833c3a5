"""A subscription's sequence: buffered until live, no duplicate and no gap at the seam."""

from __future__ import annotations

from chatroom.domain.events import Author
from chatroom.domain.stream_ids import StreamId
from chatroom.hub.connection import Connection
from chatroom.hub.subscription import RoomRef, Subscription
from chatroom.hub.transport import SharedRun, SharedText
from fake_transport import FakeTransport

LOBBY = RoomRef(1, "lobby", False)


def _subscription(buffer_max: int = 10) -> tuple[Subscription, Connection]:
    connection = Connection(FakeTransport(), Author(1, "alice", "Alice"), queue_max=100)
    return Subscription(connection, LOBBY, buffer_max=buffer_max), connection


def _queued(connection: Connection) -> list[str]:
    return list(connection._queue)


def test_live_messages_wait_until_the_replay_is_done_and_the_seam_is_clean() -> None:
    subscription, connection = _subscription()
    subscription.last_sent = StreamId(1, 0)
    subscription.deliver(StreamId(3, 0), "live-3")  # arrives while the replay runs
    subscription.deliver(StreamId(4, 0), "live-4")
    assert _queued(connection) == []
    for ms in (2, 3):  # the replay's last page overlaps the live fan-out
        subscription.replayed(StreamId(ms, 0), f"page-{ms}")
    assert subscription.go_live()
    assert _queued(connection) == ["page-2", "page-3", "live-4"]
    subscription.deliver(StreamId(4, 0), "again-4")  # at or below last_sent: dropped
    subscription.deliver(StreamId(5, 0), "live-5")
    assert _queued(connection)[-1] == "live-5" and len(_queued(connection)) == 4


def test_an_overflowing_buffer_makes_the_replay_read_on() -> None:
    subscription, connection = _subscription(buffer_max=2)
    for ms in range(1, 5):
        subscription.deliver(StreamId(ms, 0), f"live-{ms}")
    assert not subscription.go_live()  # dropped the buffer: read history again first
    assert not subscription.live and _queued(connection) == []
    subscription.replayed(StreamId(4, 0), "page-4")
    assert subscription.go_live()
    assert _queued(connection) == ["page-4"]


def _run(*ids: int) -> tuple[list[tuple[StreamId, SharedText]], SharedRun]:
    run = [(StreamId(ms, 0), SharedText(f"live-{ms}")) for ms in ids]
    return run, SharedRun([frame for _, frame in run])


def test_a_run_of_live_messages_goes_out_whole_or_from_the_first_new_one() -> None:
    subscription, connection = _subscription()
    run, shared = _run(2, 3)
    subscription.deliver_run(run, shared)  # not live yet: buffered one by one
    assert _queued(connection) == []
    assert subscription.go_live()
    assert _queued(connection) == ["live-2", "live-3"]
    run, shared = _run(3, 4, 5)  # overlaps what was sent: only the new ones, in order
    subscription.deliver_run(run, shared)
    assert _queued(connection) == ["live-2", "live-3", "live-4", "live-5"]
    assert subscription.last_sent == StreamId(5, 0)
    run, shared = _run(6, 7)  # all new: the run as it is (this transport takes it whole
    subscription.deliver_run(run, shared)  # only as single frames)
    assert _queued(connection)[-2:] == ["live-6", "live-7"]
    assert subscription.last_sent == StreamId(7, 0)
