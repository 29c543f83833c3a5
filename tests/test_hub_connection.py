"""A connection's bounded queue and its reader and writer tasks, on a fake transport."""

from __future__ import annotations

import asyncio

from chatroom.domain.events import Author
from chatroom.domain.frames import CloseCode
from chatroom.hub.connection import Connection
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
