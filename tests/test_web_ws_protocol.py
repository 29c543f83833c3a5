"""The ready-made WebSocket text frames that the node writes straight to its sockets."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from chatroom.web.ws_protocol import text_frame


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
