"""Percentiles from the load generator's latency histogram, and plain-text tables."""

from __future__ import annotations

from collections.abc import Sequence

from _load import BUCKET_NS


def percentile_ms(histogram: Sequence[int], fraction: float) -> float | None:
    """The upper edge of the 0.1 ms bucket holding the given fraction of the samples."""
    total = sum(histogram)
    if total == 0:
        return None
    wanted = fraction * total
    running = 0
    for bucket, count in enumerate(histogram):
        running += count
        if count and running >= wanted:
            return round((bucket + 1) * BUCKET_NS / 1e6, 1)
    return round(len(histogram) * BUCKET_NS / 1e6, 1)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
