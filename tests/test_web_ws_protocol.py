"""The ready-made WebSocket text frames that the node writes straight to its sockets, and
the light queue and flag that stand in for uvicorn's per-socket asyncio.Queue and Event."""

from __future__ import annotations

import asyncio

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from chatroom.web.ws_protocol import Flag, Inbox, text_frame


def _parse(wire: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        assert reader.at_eof()  # nothing before or after the one frame
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
