"""The ready-made WebSocket text frames that the node writes straight to its sockets (a
room's run of messages in one write), and the light queue and flag that stand in for
uvicorn's per-socket asyncio.Queue and Event."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

import pytest
from starlette.websockets import WebSocket
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from chatroom.hub.transport import SharedRun, SharedText, shared_runs
from chatroom.web.ws import WebSocketTransport
from chatroom.web.ws_protocol import SEND_WIRE, Flag, Inbox, text_frame


def _at_eof(reader: StreamReader) -> bool:
    """`StreamReader.at_eof` is a generator: run it (all data is fed, so it never waits)."""
    try:
        next(reader.at_eof())
    except StopIteration as done:
        return bool(done.value)
    raise AssertionError("the reader waits for data")


def _parse(wire: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        assert _at_eof(reader)  # nothing before or after the one frame
        return frame
    raise AssertionError("the frame is incomplete")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_a_text_frame_parses_back_whole_at_every_length_encoding(size: int) -> None:
    payload = ("é" * size).encode()[:size]
    frame = _parse(text_frame(payload))
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.TEXT, True, payload)
    assert not (frame.rsv1 or frame.rsv2 or frame.rsv3)


def test_hostile_text_survives_the_framing_byte_exact() -> None:
    text = '{"body":"\U0001f469\u200d\U0001f4bb \u202e\x00 \'); DROP TABLE messages; --"}'
    assert _parse(text_frame(text.encode())).data.decode() == text


async def test_the_inbox_hands_events_to_its_reader_in_order_waiting_when_empty() -> None:
    inbox = Inbox()
    inbox.put_nowait("connect")
    assert await inbox.get() == "connect"
    assert inbox.empty()
    waiting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    inbox.put_nowait("first")
    inbox.put_nowait("second")
    assert await waiting == "first"
    assert await inbox.get() == "second"


async def test_a_reader_cancelled_while_waiting_loses_no_event() -> None:
    inbox = Inbox()
    waiting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    waiting.cancel()
    inbox.put_nowait("disconnect")
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await inbox.get() == "disconnect"


async def test_the_flag_wakes_every_waiter_when_set_and_only_then() -> None:
    flag = Flag(value=True)
    assert await flag.wait()
    flag.clear()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert flag.is_set()


def _parse_all(wire: bytes) -> list[Frame]:
    reader = StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    frames: list[Frame] = []
    while not _at_eof(reader):
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
        except StopIteration as done:
            frames.append(done.value)
            continue
        raise AssertionError("a frame is incomplete")
    return frames


class _Socket:
    """The node's protocol as the transport sees it: what it writes, whole."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    async def send(self, frame: bytes) -> None:
        self.writes.append(frame)

    def send_now(self, frame: bytes) -> bool:
        self.writes.append(frame)
        return True


def test_a_run_of_shared_frames_is_one_write_of_whole_frames_in_order() -> None:
    socket = _Socket()
    scope = {"extensions": {SEND_WIRE: {"send": socket.send, "send_now": socket.send_now}}}
    transport = WebSocketTransport(cast(WebSocket, SimpleNamespace(scope=scope)))
    texts = ['{"type":"message","i":0}', "é" * 70_000, '{"type":"message","i":2}']
    run = SharedRun([SharedText(text) for text in texts])
    assert transport.send_run_now(run)
    assert transport.send_now(run.frames[1])  # a subscriber that got it alone: same bytes
    assert len(socket.writes) == 2
    frames = _parse_all(socket.writes[0])
    assert [(f.opcode, f.fin, f.data.decode()) for f in frames] == [
        (Opcode.TEXT, True, text) for text in texts
    ]
    assert socket.writes[1] == run.frames[1].wire == text_frame(texts[1].encode())


def test_shared_runs_keep_the_order_and_bound_what_one_write_carries() -> None:
    items = [(n, "x" * 30_000) for n in range(5)] + [(5, "y" * 100_000), (6, "z")]
    runs = shared_runs(items)
    assert [[key for key, _ in run] for run in runs] == [[0, 1], [2, 3], [4], [5], [6]]
    assert all(isinstance(frame, SharedText) for run in runs for _, frame in run)
    assert [text for run in runs for _, text in run] == [text for _, text in items]
    assert shared_runs([]) == []
