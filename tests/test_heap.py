"""The collector's settings of a long-running process (heap.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from chatroom.heap import YOUNG_COLLECTION_EVERY, settle_heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_settle_heap_freezes_the_startup_heap_and_collects_the_young_less_often() -> None:
    startup = [[i] for i in range(1000)]  # a startup heap: containers kept for good
    settle_heap()
    assert gc.get_freeze_count() >= len(startup)
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_EVERY
    # Cycles made afterwards are still collected.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
