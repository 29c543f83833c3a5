"""How a batch is shared among the archiver's parallel SQL writers (no I/O)."""

from __future__ import annotations

from chatroom.archiver.partitions import share_by_room

# (room, room id, serial): a row of a room; a letter is (room, serial).
Row = tuple[str, int, int]
Letter = tuple[str | None, int]


def test_each_room_goes_whole_to_one_writer_in_read_order() -> None:
    ids = {"lobby": 1, "dev": 2, "ops": 3, "qa": 4}
    sizes = {"lobby": 6, "dev": 4, "ops": 3, "qa": 2}
    rows = [
        (room, ids[room], serial) for serial in range(6) for room in ids if serial < sizes[room]
    ]
    letters: list[Letter] = [("qa", 100), ("ops", 101), ("qa", 102)]
    shares = share_by_room(
        rows,
        letters,
        2,
        room_of_row=lambda row: row[0],
        room_of_letter=lambda letter: letter[0],
        room_id_of_row=lambda row: row[1],
    )
    assert len(shares) == 2
    seen: dict[str, int] = {}
    for index, share in enumerate(shares):
        for room, _, _ in share.rows:
            assert seen.setdefault(room, index) == index  # a room in one share only
        for room, _ in share.letters:
            assert room is not None and seen.setdefault(room, index) == index
        # Within a share, each room's rows in the order they were read.
        assert share.rows == [row for row in rows if row[0] in {r for r, _, _ in share.rows}]
    assert sorted(r for s in shares for r in s.rows) == sorted(rows)
    assert sorted(x[1] for s in shares for x in s.letters) == [100, 101, 102]
    # Biggest first, each to the lightest: lobby (6) | dev (4), then ops (4 with its
    # letter) to dev's (8), then qa (4 with its letters) to lobby's (10).
    assert [sorted(s.room_ids) for s in shares] == [[1, 4], [2, 3]]
    # Held changes: the second only its rooms; the first every room but the second's.
    held = [s.held for s in shares]
    assert held[1] is not None and held[1].only and held[1].rooms == {2, 3}
    assert held[0] is not None and not held[0].only and held[0].rooms == {2, 3}
    assert held[0].covers(1) and held[0].covers(99) and not held[0].covers(2)
    assert held[1].covers(3) and not held[1].covers(1)


def test_one_writer_or_one_room_is_one_share_applying_every_held_change() -> None:
    rows: list[Row] = [("lobby", 1, 0), ("dev", 2, 1)]
    [single] = share_by_room(
        rows,
        [],
        1,
        room_of_row=lambda row: row[0],
        room_of_letter=lambda letter: letter[0],
        room_id_of_row=lambda row: row[1],
    )
    assert single.rows == rows and single.held is None
    lobby: list[Row] = [("lobby", 1, 0), ("lobby", 1, 1)]
    [alone] = share_by_room(
        lobby,
        [("lobby", 5)],
        4,
        room_of_row=lambda row: row[0],
        room_of_letter=lambda letter: letter[0],
        room_id_of_row=lambda row: row[1],
    )
    assert alone.rows == lobby and alone.letters == [("lobby", 5)] and alone.held is None
    assert (
        share_by_room(
            [],
            [],
            3,
            room_of_row=lambda row: row[0],
            room_of_letter=lambda letter: letter[0],
            room_id_of_row=lambda row: row[1],
        )
        == []
    )


def test_no_more_shares_than_rooms() -> None:
    rows: list[Row] = [("lobby", 1, 0), ("dev", 2, 1), ("lobby", 1, 2)]
    shares = share_by_room(
        rows,
        [],
        8,
        room_of_row=lambda row: row[0],
        room_of_letter=lambda letter: letter[0],
        room_id_of_row=lambda row: row[1],
    )
    assert [s.rows for s in shares] == [[("lobby", 1, 0), ("lobby", 1, 2)], [("dev", 2, 1)]]
