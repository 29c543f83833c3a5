"""A connection's bounded queue and its reader and writer tasks, on a fake transport."""

from __future__ import annotations

import asyncio

from chatroom.domain.events import Author
from chatroom.domain.frames import CloseCode
from chatroom.hub.connection import Connection
from chatroom.hub.transport import SharedRun, SharedText
from fake_transport import FakeTransport

ALICE = Author(7, "alice", "Alice")


async def _echo(connection: Connection, frame: str | bytes) -> None:
    connection.offer(f'{{"type":"echo","got":{len(frame)}}}')


async def test_frames_go_out_in_order_and_the_run_ends_when_the_client_leaves() -> None:
    transport = FakeTransport()
    connection = Connection(transport, ALICE, queue_max=100)
    running = asyncio.create_task(connection.run(lambda f: _echo(connection, f)))
    for i in range(50):
        assert connection.offer(f'{{"type":"n","i":{i}}}')
    assert [(await transport.next())["i"] for _ in range(50)] == list(range(50))
    transport.push("abc")
    assert (await transport.next())["got"] == 3
    transport.leave()
    await asyncio.wait_for(running, 5)
    assert transport.closed is None  # the client closed; nothing to send back


async def test_a_client_that_stops_reading_is_closed_as_a_slow_consumer() -> None:
    transport = FakeTransport()
    transport.reading.clear()
    connection = Connection(transport, ALICE, queue_max=10)
    running = asyncio.create_task(connection.run(lambda f: _echo(connection, f)))
    taken = [connection.offer('{"type":"n"}') for _ in range(30)]
    # One frame is stuck in the writer's send, ten wait in the queue, the next overflows.
    assert taken.count(True) in (10, 11)
    assert not taken[-1]
    await asyncio.wait_for(running, 5)
    assert transport.closed is not None
    assert transport.closed[0] == CloseCode.SLOW_CONSUMER
    assert connection.queued == 0  # nothing kept for a client that is gone


async def test_a_close_decided_by_the_reader_stops_both_tasks() -> None:
    transport = FakeTransport()
    connection = Connection(transport, ALICE, queue_max=10)

    async def on_frame(frame: str | bytes) -> None:
        connection.close(CloseCode.MESSAGE_TOO_BIG, "too big")

    running = asyncio.create_task(connection.run(on_frame))
    transport.push("x")
    await asyncio.wait_for(running, 5)
    assert transport.closed == (CloseCode.MESSAGE_TOO_BIG, "too big")
    assert not connection.offer('{"type":"late"}')


async def test_background_work_is_cancelled_with_the_connection() -> None:
    transport = FakeTransport()
    connection = Connection(transport, ALICE, queue_max=10)
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    running = asyncio.create_task(connection.run(lambda f: _echo(connection, f)))
    work = connection.spawn(forever(), name="replay")
    await started.wait()
    transport.leave()
    await asyncio.wait_for(running, 5)
    assert work.cancelled()


async def test_an_error_in_frame_handling_closes_with_1011() -> None:
    transport = FakeTransport()
    connection = Connection(transport, ALICE, queue_max=10)

    async def broken(frame: str | bytes) -> None:
        raise KeyError("bug")

    running = asyncio.create_task(connection.run(broken))
    transport.push("x")
    await asyncio.wait_for(running, 5)
    assert transport.closed is not None and transport.closed[0] == CloseCode.INTERNAL_ERROR


async def test_replays_wait_for_room_in_the_queue() -> None:
    transport = FakeTransport()
    transport.reading.clear()
    connection = Connection(transport, ALICE, queue_max=10)
    running = asyncio.create_task(connection.run(lambda f: _echo(connection, f)))
    for _ in range(8):
        connection.offer('{"type":"n"}')
    waiting = asyncio.create_task(connection.wait_writable())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # over half full: a replay waits instead of overflowing
    transport.reading.set()
    await asyncio.wait_for(waiting, 5)
    transport.leave()
    await asyncio.wait_for(running, 5)


async def test_an_idle_connection_runs_no_task_besides_the_sockets_own() -> None:
    transport = FakeTransport()
    connection = Connection(transport, ALICE, queue_max=10)
    before = asyncio.all_tasks()
    running = asyncio.create_task(connection.run(lambda f: _echo(connection, f)))
    assert connection.offer('{"type":"hello"}')  # a writer while a frame waits ...
    assert (await transport.next())["type"] == "hello"
    await asyncio.sleep(0.01)
    assert asyncio.all_tasks() - before == {running}  # ... and none once it is out
    transport.leave()
    await asyncio.wait_for(running, 5)


async def test_a_close_decided_elsewhere_interrupts_the_wait_for_the_next_frame() -> None:
    transport = FakeTransport()
    connection = Connection(transport, ALICE, queue_max=10)
    running = asyncio.create_task(connection.run(lambda f: _echo(connection, f)))
    await asyncio.sleep(0.01)  # the reader waits for a frame that never comes
    connection.close(CloseCode.SIGNED_OUT, "the session has ended")
    await asyncio.wait_for(running, 5)
    assert transport.closed == (CloseCode.SIGNED_OUT, "the session has ended")


class WritingTransport(FakeTransport):
    """A socket that takes what it is given at once while `writable`, as the node's does:
    each write is kept whole in `writes`, and its frames also in `sent`."""

    def __init__(self) -> None:
        super().__init__()
        self.writable = True
        self.writes: list[list[str]] = []

    def send_now(self, frame: str) -> bool:
        return self._write([frame])

    def send_run_now(self, run: SharedRun) -> bool:
        return self._write(list(run.frames))

    def _write(self, frames: list[str]) -> bool:
        if not self.writable or self.closed is not None:
            return False
        self.writes.append(frames)
        self.sent.extend(frames)
        return True


def _shared_run(*numbers: int) -> SharedRun:
    return SharedRun([SharedText(f'{{"type":"n","i":{i}}}') for i in numbers])


async def test_a_run_of_frames_is_one_write_when_the_socket_takes_it_else_frame_by_frame() -> None:
    transport = WritingTransport()
    connection = Connection(transport, ALICE, queue_max=100)
    running = asyncio.create_task(connection.run(lambda f: _echo(connection, f)))
    connection.offer_run(_shared_run(0, 1, 2))
    assert transport.writes == [['{"type":"n","i":0}', '{"type":"n","i":1}', '{"type":"n","i":2}']]
    transport.writable = False  # its buffer is full: the run waits in the queue, in order
    connection.offer_run(_shared_run(3, 4))
    assert connection.queued == 2
    transport.writable = True
    connection.offer_run(_shared_run(5, 6))  # behind what is queued, never before it
    assert [(await transport.next())["i"] for _ in range(7)] == list(range(7))
    assert len(transport.writes) == 1  # the rest went out frame by frame, by the writer
    transport.leave()
    await asyncio.wait_for(running, 5)


async def test_a_run_for_a_closing_connection_is_dropped() -> None:
    transport = WritingTransport()
    connection = Connection(transport, ALICE, queue_max=100)
    connection.close(CloseCode.SIGNED_OUT, "the session has ended")
    connection.offer_run(_shared_run(0, 1))
    assert transport.writes == [] and connection.queued == 0


async def test_a_run_longer_than_the_queue_allows_closes_a_client_that_reads_nothing() -> None:
    transport = WritingTransport()
    transport.writable = False
    connection = Connection(transport, ALICE, queue_max=10)
    connection.offer_run(_shared_run(*range(20)))
    assert connection.close_code == CloseCode.SLOW_CONSUMER
    assert connection.queued == 0
