"""Room stream entries as Redis sends them (streams/entries.py): pure parsing."""

from __future__ import annotations

from chatroom.domain.stream_ids import StreamId
from chatroom.streams.entries import entry_id, fields_of, stream_replies


def test_an_entry_id_is_a_stream_id_equal_to_the_parsed_one() -> None:
    made = entry_id(b"1796008083859-12")
    assert made == StreamId.parse("1796008083859-12") == StreamId(1796008083859, 12)
    assert type(made) is StreamId and str(made) == "1796008083859-12"
    assert made.ms == 1796008083859 and made.seq == 12
    assert entry_id("5-0") < made and hash(made) == hash(StreamId(1796008083859, 12))


def test_fields_come_from_the_flat_list_and_a_deleted_entry_has_none() -> None:
    assert fields_of([b"event", b"{}"]) == {b"event": b"{}"}
    assert fields_of([b"a", b"1", b"b", b"2", b"a", b"3"]) == {b"a": b"3", b"b": b"2"}
    assert fields_of(None) == {} and fields_of([]) == {}


def test_a_read_reply_is_the_same_pairs_under_resp2_and_resp3() -> None:
    entries = [[b"1-0", [b"event", b"x"]], [b"2-0", None]]
    as_map = {b"chatroom:room:{a}:stream": entries}
    as_list = [[b"chatroom:room:{a}:stream", entries]]
    assert list(stream_replies(as_map)) == [(b"chatroom:room:{a}:stream", entries)]
    assert [tuple(pair) for pair in stream_replies(as_list)] == list(stream_replies(as_map))
    assert list(stream_replies(None)) == [] and list(stream_replies({})) == []
