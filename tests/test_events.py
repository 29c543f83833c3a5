"""Strict decoding of stream entries: every malformed entry has a reason."""

import json

import pytest

from chatroom.domain.events import Author, InvalidEvent, MessageEvent, decode_event
from chatroom.domain.rules import RuleError, clean_body

ALICE = Author(1, "alice", "Alice")


def _fields(obj: object) -> dict[bytes, bytes]:
    return {b"event": json.dumps(obj).encode()}


def _valid(**changes: object) -> dict[str, object]:
    envelope: dict[str, object] = {
        "v": 1,
        "type": "message",
        "room": "lobby",
        "user": {"id": 1, "username": "alice", "display_name": "Alice"},
        "body": "hello",
        "client_id": "c1",
    }
    envelope.update(changes)
    return envelope


def test_round_trip_keeps_every_character() -> None:
    body = "a\x00b \u202eevil\u202c 👩‍👩‍👧 🎉 '); DROP TABLE messages; --"
    event = MessageEvent("lobby", ALICE, body, "c-1")
    assert decode_event("lobby", {b"event": event.encode()}) == event


def test_a_direct_conversations_messages_decode_and_so_are_archived() -> None:
    slug = "dm.0123456789abcdef01234567"
    event = MessageEvent(slug, ALICE, "hi", "c-1")
    assert decode_event(slug, {b"event": event.encode()}) == event
    with pytest.raises(InvalidEvent):
        decode_event("dm.nothex", {b"event": MessageEvent("dm.nothex", ALICE, "x", "c").encode()})


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({b"event": b'{"v":1,"type":"mess'}, "not JSON"),
        ({b"event": b"null"}, "must be a JSON object"),
        ({b"event": b"\xff\xfe"}, "not UTF-8"),
        ({b"other": b"{}"}, "no 'event' field"),
        (_fields(_valid(v=2)), "unknown envelope version"),
        (_fields(_valid(type="rename")), "unknown event type"),
        (_fields(_valid(room="other")), "does not match its stream"),
        (_fields(_valid(user="alice")), "'user' must be an object"),
        (_fields(_valid(user={"id": "1", "username": "alice", "display_name": "A"})), "user.id"),
        (_fields(_valid(user={"id": True, "username": "alice", "display_name": "A"})), "user.id"),
        (_fields(_valid(body=5)), "'body' must be a string"),
        (_fields(_valid(body="   ")), "'body' is empty"),
        (_fields(_valid(body="x" * 16_001)), "over 16000"),
        (_fields(_valid(client_id="")), "client_id"),
        (_fields(_valid(body="\ud800")), "lone surrogate"),
        # What the fast decoder (orjson) refuses or reads differently gets json's reason.
        ({b"event": b'{"v":1,"type":"message","body":"\\udc00"}'}, "'room' must be a string"),
        (_fields(_valid(user={"id": 1, "username": "alice", "display_name": "\udfff"})), "lone"),
        (_fields(_valid(v=2**70)), f"unknown envelope version {2**70}$"),
        (_fields(_valid(room=2**70)), "'room' must be a string, got int$"),
        (_fields(_valid(user={"id": 2**64, "username": "a", "display_name": "A"})), "user.id"),
        ({b"event": b'{"v":NaN}'}, "unknown envelope version nan"),
        ({b"event": b'"\xed\xa0\x80"'}, "not UTF-8"),
        (_fields(_valid(user={"id": 1, "username": "alice", "display_name": 5})), "display_name"),
    ],
)
def test_malformed_entries_say_why(fields: dict[bytes, bytes], reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        decode_event("lobby", fields)


def test_body_rules() -> None:
    assert clean_body("  hi \n", 10) == "hi"
    assert clean_body("\x00", 10) == "\x00"
    for body, code in [("   ", "empty_body"), ("x" * 11, "body_too_long"), (None, "missing_field")]:
        with pytest.raises(RuleError) as caught:
            clean_body(body, 10)
        assert caught.value.code == code
    # A 4-byte emoji is one character, not two or four.
    assert clean_body("🎉" * 10, 10) == "🎉" * 10


def test_names_refuse_a_trailing_newline() -> None:
    from chatroom.domain.rules import check_slug, check_username, is_client_id

    for check, good in [(check_username, "alice"), (check_slug, "lobby")]:
        assert check(good) == good
        with pytest.raises(RuleError):
            check(good + "\n")
    assert is_client_id("c1") and not is_client_id("c1\n")


def test_a_client_id_is_1_to_64_characters_from_bang_to_tilde() -> None:
    from chatroom.domain.rules import CLIENT_ID_MAX, is_client_id

    assert is_client_id("!") and is_client_id("~" * CLIENT_ID_MAX)
    for bad in ["", "a" * (CLIENT_ID_MAX + 1), "a b", "a\tb", "a\x7f", "é", "a\u00a0"]:
        assert not is_client_id(bad), repr(bad)
    every = [chr(c) for c in range(0x200)]
    assert [c for c in every if is_client_id(c)] == [chr(c) for c in range(0x21, 0x7F)]


DEEP = 100_000


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * DEEP + b"]" * DEEP,
        b'{"v":1,"x":' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}",
        # Deeper than the standard library's recursion allows, within orjson's limit.
        b'{"v":1,"type":"message","x":' + b"[" * 1010 + b"]" * 1010 + b"}",
    ],
    ids=["array", "in_an_envelope", "past_json_within_orjson"],
)
def test_deeply_nested_json_is_an_invalid_event_not_a_recursion_error(raw: bytes) -> None:
    # Before the fix: RecursionError out of json.loads, which crashed the archiver and
    # dropped the rest of a hub's XREAD batch.
    with pytest.raises(InvalidEvent, match="not JSON: nested too deeply"):
        decode_event("lobby", {b"event": raw})


def test_a_decoder_surprise_is_an_invalid_event(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatroom.domain import events

    def broken(_text: str) -> object:
        raise KeyError("surprise")

    monkeypatch.setattr(events.json, "loads", broken)
    with pytest.raises(InvalidEvent, match="cannot be decoded: KeyError"):
        decode_event("lobby", {b"event": b"{oops"})
