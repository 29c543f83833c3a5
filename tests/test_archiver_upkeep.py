"""What the upkeep reports (no services): the progress the write pipeline counts, per room
and second, for the trims and for the rows/s of `chatroom status`."""

from __future__ import annotations

import time

from chatroom.archiver.upkeep import Progress


def test_progress_adds_up_batches_per_room_and_second() -> None:
    progress = Progress()
    before = int(time.time())
    progress.add(["lobby", "dev"], {"lobby": 3, "dev": 1}, {})
    progress.add(["lobby"], {"lobby": 2}, {"lobby": 1})
    after = int(time.time())
    assert progress.dirty_rooms == {"lobby", "dev"}
    per_room: dict[str, int] = {}
    for (room, second), rows in progress.archived.items():
        assert before <= second <= after
        per_room[room] = per_room.get(room, 0) + rows
    assert per_room == {"lobby": 5, "dev": 1}
    assert progress.missing == {"lobby": 1}
    progress.add(["ghost-room"], {}, {})  # acknowledged, nothing archived: trimmed only
    assert "ghost-room" in progress.dirty_rooms
    assert all(room != "ghost-room" for room, _ in progress.archived)
