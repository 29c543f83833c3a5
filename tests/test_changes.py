"""The change events (edit, delete, react, unreact) and reply_to: round trips, and
strict decoding where every malformed envelope has a reason and nothing else escapes."""

import json

import pytest

from chatroom.domain.changes import ChangeEvent
from chatroom.domain.events import Author, InvalidEvent, MessageEvent, decode_event
from chatroom.domain.frames import entry_frame
from chatroom.domain.rules import is_emoji
from chatroom.domain.stream_ids import StreamId

ALICE = Author(1, "alice", "Alice")
TARGET = StreamId(1_767_268_800_000, 3)
EVENT_ID = StreamId(1_767_268_800_500, 0)


def _fields(obj: object) -> dict[bytes, bytes]:
    return {b"event": json.dumps(obj).encode()}


def _change(**changes: object) -> dict[str, object]:
    envelope: dict[str, object] = {
        "v": 1,
        "type": "edit",
        "room": "lobby",
        "user": {"id": 1, "username": "alice", "display_name": "Alice"},
        "client_id": "c1",
        "target": str(TARGET),
        "body": "better words",
    }
    envelope.update(changes)
    return envelope


EVENTS = [
    ChangeEvent("edit", "lobby", ALICE, TARGET, "e1", body="new 🎉 body"),
    ChangeEvent("delete", "lobby", ALICE, TARGET, "d1"),
    ChangeEvent("delete", "lobby", ALICE, TARGET, "d2", reason="spam", moderated=True),
    ChangeEvent("react", "lobby", ALICE, TARGET, "r1", emoji="👍"),
    ChangeEvent("unreact", "lobby", ALICE, TARGET, "u1", emoji="👩‍👩‍👧"),
    MessageEvent("lobby", ALICE, "quoting you", "m1", reply_to=TARGET),
    MessageEvent("lobby", ALICE, "plain", "m2"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: f"{e.type}-{e.client_id}")
def test_every_event_type_round_trips(event: ChangeEvent | MessageEvent) -> None:
    assert decode_event("lobby", {b"event": event.encode()}) == event


def test_a_plain_message_is_encoded_as_before() -> None:
    raw = json.loads(MessageEvent("lobby", ALICE, "plain", "m2").encode())
    assert "reply_to" not in raw


def test_the_frames_carry_the_ids_and_never_the_reason() -> None:
    delete = json.loads(entry_frame(EVENT_ID, EVENTS[2]))
    assert delete == {
        "type": "delete",
        "id": str(EVENT_ID),
        "room": "lobby",
        "target": str(TARGET),
        "user": ALICE.as_json(),
        "created_at": "2026-01-01T12:00:00.500Z",
        "client_id": "d2",
        "moderated": True,
    }
    react = json.loads(entry_frame(EVENT_ID, EVENTS[3]))
    assert (react["type"], react["emoji"], react["target"]) == ("react", "👍", str(TARGET))
    edit = json.loads(entry_frame(EVENT_ID, EVENTS[0]))
    assert edit["body"] == "new 🎉 body"
    reply = json.loads(entry_frame(EVENT_ID, EVENTS[5]))
    assert (reply["type"], reply["reply_to"]) == ("message", str(TARGET))
    plain = json.loads(entry_frame(EVENT_ID, EVENTS[6]))
    assert plain["reply_to"] is None


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (_change(type="rename"), "unknown event type"),
        (_change(target=None), "'target' must be a message id string"),
        (_change(target="yesterday"), "'target' is not a message id"),
        (_change(target="1-99999999999999999999"), "'target' is not a message id"),
        (_change(body=""), "'body' is empty"),
        (_change(body="  "), "'body' is empty"),
        (_change(body=7), "'body' must be a string"),
        (_change(body="x" * 16_001), "over 16000"),
        (_change(type="delete", moderated="yes"), "'moderated' must be a boolean"),
        (_change(type="delete", reason=["spam"]), "'reason' must be a string"),
        (_change(type="delete", reason="r" * 501), "over 500"),
        (_change(type="react", emoji="lol"), "not one emoji"),
        (_change(type="react", emoji="👍 👍"), "not one emoji"),
        (_change(type="react", emoji=None), "'emoji' must be a string"),
        (_change(type="unreact", emoji=""), "not one emoji"),
        (_change(client_id=""), "client_id"),
        (_change(user={"id": True}), "user.id"),
        (_change(room="general"), "does not match its stream"),
        ({**_change(type="message"), "reply_to": 12}, "'reply_to' must be a message id"),
    ],
)
def test_a_malformed_change_has_a_reason(envelope: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        decode_event("lobby", _fields(envelope))


def test_a_lone_surrogate_in_an_edit_is_refused() -> None:
    raw = json.dumps(_change(body="a\ud800b")).encode()
    with pytest.raises(InvalidEvent, match="lone surrogate"):
        decode_event("lobby", {b"event": raw})


@pytest.mark.parametrize(
    "junk",
    [b"[]", b'{"v":1,"type":"edit"}', b'{"v":1,"type":"react","target":{}}', b"\x00" * 10],
)
def test_the_decoder_raises_nothing_but_invalid_event(junk: bytes) -> None:
    with pytest.raises(InvalidEvent):
        decode_event("lobby", {b"event": junk})


@pytest.mark.parametrize(
    ("text", "one"),
    [
        ("👍", True),
        ("👍🏽", True),
        ("❤️", True),
        ("🏳️‍🌈", True),
        ("1️⃣", True),
        ("a", False),
        ("1", False),
        ("👍 ", False),
        ("", False),
        ("👍" * 17, False),
        ("<b>", False),
    ],
)
def test_an_emoji_is_one_emoji_not_text(text: str, one: bool) -> None:
    assert is_emoji(text) is one
