"""The garbage collector's settings for a long-running process (an app node, an archiver).

A process builds most of its objects at its start (modules, SQL tables, routes, settings:
100,000 or more) and keeps them. With Python's defaults, a young collection runs every
700 allocations, and every few of them an older one walks that startup heap again: a
message costs an app node about fifty short-lived objects, and an archiver's entry about
fifteen that live as long as their batch, so the collector ran all the time. Measured:
about a fifth of the archiver's CPU, and 23 % of an app node's loaded event loop under
bench/ingest.py (py-spy --native, docs/performance.md, "Ingest at 20,000/s").

`settle_heap()`, once the process has started, takes the startup heap out of the
collector's walks (`gc.freeze`) and collects the young generation less often. Memory is
not at stake: almost everything is freed by reference counting, and cycles are still
collected, a little later.
"""

from __future__ import annotations

import gc

# Allocations between two young-generation collections (Python's default is 700).
YOUNG_COLLECTION_EVERY = 50_000


def settle_heap() -> None:
    """Freeze what the process built so far, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, middle, old)
