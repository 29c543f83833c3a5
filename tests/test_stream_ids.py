from datetime import UTC, datetime

import pytest

from chatroom.domain.stream_ids import InvalidStreamId, StreamId, iso_millis


def test_ids_order_numerically() -> None:
    ids = [StreamId.parse(f"1655188547271-{seq}") for seq in (10, 9, 100, 0)]
    assert [str(i) for i in sorted(ids)] == [
        "1655188547271-0",
        "1655188547271-9",
        "1655188547271-10",
        "1655188547271-100",
    ]
    assert StreamId.parse("999-5") < StreamId.parse("1000-0")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "1-",
        "-1",
        "a-1",
        "1-1-1",
        " 1-1",
        "1-1\n",
        "99999999999999999999-0",
        "9223372036854775808-0",
        "1-9223372036854775808",
    ],
)
def test_malformed_ids_are_refused(text: str) -> None:
    with pytest.raises(InvalidStreamId):
        StreamId.parse(text)
    with pytest.raises(InvalidStreamId):  # as Redis would reply it: the bytes' fast path
        StreamId.parse(text.encode())


def test_an_id_in_bytes_is_the_same_id_as_in_text() -> None:
    for text in ("0-0", "1655188547271-10", "01-02", "9223372036854775807-9223372036854775807"):
        assert StreamId.parse(text.encode()) == StreamId.parse(text)


def test_neighbours_and_time() -> None:
    sid = StreamId(1_700_000_000_123, 4)
    assert sid.next() == StreamId(sid.ms, 5)
    assert sid.previous() == StreamId(sid.ms, 3)
    assert StreamId(5, 0).previous() < StreamId(5, 0) < StreamId(5, 0).next()
    assert StreamId(0, 0).previous() == StreamId(0, 0)
    assert sid.created_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert iso_millis(sid.ms) == "2023-11-14T22:13:20.123Z"
    assert iso_millis(1_700_000_000_005) == "2023-11-14T22:13:20.005Z"
