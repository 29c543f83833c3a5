"""Client frame parsing and server frame shapes (pure)."""

from __future__ import annotations

import json

import orjson
import pytest

from chatroom.domain import frames
from chatroom.domain.events import Author, Message
from chatroom.domain.frames import (
    ErrorCode,
    FrameError,
    Ping,
    Send,
    Subscribe,
    Typing,
    Unsubscribe,
    parse_client_frame,
)
from chatroom.domain.stream_ids import StreamId

ALICE = Author(7, "alice", "Alice")


def parse(frame: str | bytes) -> frames.ClientFrame:
    return parse_client_frame(frame, body_max_chars=4000)


def error_of(frame: str | bytes) -> FrameError:
    with pytest.raises(FrameError) as caught:
        parse(frame)
    return caught.value


def test_valid_frames_parse_into_their_types() -> None:
    assert parse('{"type":"subscribe","room":"lobby"}') == Subscribe("lobby", None)
    assert parse('{"type":"subscribe","room":"lobby","since":"5-1"}') == Subscribe(
        "lobby", StreamId(5, 1)
    )
    assert parse('{"type":"subscribe","room":"lobby","since":null}') == Subscribe("lobby", None)
    assert parse('{"type":"unsubscribe","room":"lobby"}') == Unsubscribe("lobby")
    assert parse('{"type":"typing","room":"lobby"}') == Typing("lobby")
    assert parse('{"type":"ping"}') == Ping()
    assert parse(b'{"type":"ping"}') == Ping()
    sent = parse('{"type":"send","room":"lobby","body":"  hi \\u0000 \\u202e x ","client_id":"c1"}')
    assert sent == Send("lobby", "hi \x00 \u202e x", "c1")  # trimmed; NUL and bidi kept


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", ErrorCode.INVALID_JSON),
        ("[1,2]", ErrorCode.INVALID_JSON),
        ('"text"', ErrorCode.INVALID_JSON),
        (b"\xff\xfe{}", ErrorCode.INVALID_JSON),
        ("{}", ErrorCode.MISSING_FIELD),
        ('{"type":"shout"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type":42}', ErrorCode.UNKNOWN_TYPE),
        ('{"type":"subscribe"}', ErrorCode.MISSING_FIELD),
        ('{"type":"subscribe","room":5}', ErrorCode.MISSING_FIELD),
        ('{"type":"subscribe","room":"No Such Room!"}', ErrorCode.ROOM_NOT_FOUND),
        ('{"type":"subscribe","room":"lobby","since":"yesterday"}', ErrorCode.INVALID_SINCE),
        ('{"type":"subscribe","room":"lobby","since":17}', ErrorCode.INVALID_SINCE),
        ('{"type":"subscribe","room":"lobby","since":"9223372036854775808-0"}', "invalid_since"),
        ('{"type":"unsubscribe"}', ErrorCode.MISSING_FIELD),
        ('{"type":"typing"}', ErrorCode.MISSING_FIELD),
        ('{"type":"send","room":"lobby","body":"hi"}', ErrorCode.MISSING_FIELD),
        ('{"type":"send","room":"lobby","body":"hi","client_id":""}', "invalid_client_id"),
        ('{"type":"send","room":"lobby","body":"hi","client_id":"a b"}', "invalid_client_id"),
        ('{"type":"send","room":"lobby","body":"hi","client_id":7}', "invalid_client_id"),
    ],
)
def test_bad_frames_get_their_code(frame: str | bytes, code: str) -> None:
    assert error_of(frame).code == code


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (None, ErrorCode.MISSING_FIELD),
        ('""', ErrorCode.EMPTY_BODY),
        ('" \\n\\t "', ErrorCode.EMPTY_BODY),
        ("5", ErrorCode.MISSING_FIELD),
        ('"\\ud800 lone"', ErrorCode.INVALID_BODY),
        (json.dumps("x" * 4001), ErrorCode.BODY_TOO_LONG),
    ],
)
def test_a_send_error_carries_the_client_id(body: str | None, code: str) -> None:
    body_part = "" if body is None else f',"body":{body}'
    error = error_of(f'{{"type":"send","room":"lobby","client_id":"c-9"{body_part}}}')
    assert (error.code, error.client_id) == (code, "c-9")
    assert json.loads(error.as_frame()) == {
        "type": "error",
        "code": code,
        "message": error.message,
        "client_id": "c-9",
    }


def test_a_send_to_a_badly_named_room_carries_the_client_id() -> None:
    error = error_of('{"type":"send","room":"../x","client_id":"c-1","body":"hi"}')
    assert (error.code, error.client_id) == (ErrorCode.ROOM_NOT_FOUND, "c-1")


def test_body_limit_is_the_configured_one_in_characters() -> None:
    emoji = "😀" * 10
    frame = json.dumps({"type": "send", "room": "lobby", "client_id": "c", "body": emoji})
    assert parse_client_frame(frame, body_max_chars=10) == Send("lobby", emoji, "c")
    with pytest.raises(FrameError) as caught:
        parse_client_frame(frame, body_max_chars=9)
    assert caught.value.code == ErrorCode.BODY_TOO_LONG


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_json_is_invalid_json_not_a_crash(opener: str) -> None:
    deep = opener * 100_000
    assert error_of(deep).code == ErrorCode.INVALID_JSON


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"send","room":"lobby","body":"h\\u00e9 \\\\ \\"x\\"","client_id":"c~1"}',
        '{"type":"send","room":"lobby","body":"one","client_id":"c1","client_id":"c2"}',
        '{"type":"send","room":"lobby","body":"x","client_id":"c1","reply_to":null}',
        '{"type":"subscribe","room":"lobby","since":"1-0"}',
        '{"type":"send","room":"lobby","body":"\\ud800","client_id":"c1"}',
        '{"type":"send","room":7,"body":"x","client_id":"c1"}',
        '{"type":' + "9" * 30 + "}",
        ' {"type":"ping"} ',
    ],
)
def test_a_frame_reads_as_the_standard_library_reads_it(
    frame: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """orjson reads the frames of strings; every frame gets what json.loads gave alone."""

    def outcome(raw: str | bytes) -> object:
        try:
            return parse_client_frame(raw, body_max_chars=99)
        except FrameError as exc:
            return (exc.code, str(exc), exc.client_id)

    forms = (frame, frame.encode("utf-8", "surrogatepass"))
    got = [outcome(form) for form in forms]

    def refuse(_raw: object) -> object:
        raise orjson.JSONDecodeError("refused", "", 0)

    monkeypatch.setattr(orjson, "loads", refuse)  # the standard library's reading alone
    assert got == [outcome(form) for form in forms]


def test_huge_numbers_are_invalid_json() -> None:
    assert error_of('{"type":"ping","n":' + "9" * 5000 + "}").code == ErrorCode.INVALID_JSON


def test_frame_size_counts_utf8_bytes() -> None:
    assert not frames.frame_too_big("a" * 1024, 1024)
    assert frames.frame_too_big("a" * 1025, 1024)
    assert frames.frame_too_big("é" * 513, 1024)  # 1,026 bytes in 513 characters
    assert not frames.frame_too_big("é" * 512, 1024)
    assert frames.frame_too_big(b"x" * 1025, 1024)


def test_server_frames_have_the_contract_shape() -> None:
    message = Message(StreamId(1_767_268_800_123, 0), "lobby", ALICE, "hi", "c1")
    assert json.loads(frames.message(message)) == {
        "type": "message",
        "id": "1767268800123-0",
        "room": "lobby",
        "user": {"id": 7, "username": "alice", "display_name": "Alice"},
        "body": "hi",
        "created_at": "2026-01-01T12:00:00.123Z",
        "client_id": "c1",
        "reply_to": None,
    }
    assert json.loads(frames.ack("c1", StreamId(5, 2))) == {
        "type": "ack",
        "client_id": "c1",
        "id": "5-2",
    }
    assert json.loads(frames.subscribed("lobby", StreamId(5, 2), [ALICE])) == {
        "type": "subscribed",
        "room": "lobby",
        "last_id": "5-2",
        "online": [{"id": 7, "username": "alice", "display_name": "Alice"}],
    }
    assert json.loads(frames.presence("lobby", ALICE, "join"))["state"] == "join"
    assert json.loads(frames.typing("lobby", ALICE)) == {
        "type": "typing",
        "room": "lobby",
        "user": ALICE.as_json(),
    }
    assert json.loads(frames.pong()) == {"type": "pong"}
    assert json.loads(frames.resync("lobby")) == {"type": "resync", "room": "lobby"}
    limited = json.loads(
        frames.error("rate_limited", "slow down", client_id="c", retry_after_ms=80)
    )
    assert limited["retry_after_ms"] == 80 and limited["client_id"] == "c"


def test_close_codes_sit_in_their_documented_ranges() -> None:
    assert frames.CloseCode.MESSAGE_TOO_BIG == 1009
    assert 4000 <= frames.CloseCode.SLOW_CONSUMER < 4500
    assert 4500 <= frames.CloseCode.TOO_MANY_CONNECTIONS < 5000
