"""Pure byte-range arithmetic over inclusive ``(start, end)`` ranges. No I/O.

Received segments are kept sorted by start and never overlap (the service refuses
overlaps), so every question here is answered with a bisect plus a linear walk at most.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence

Range = tuple[int, int]


def missing_ranges(size: int, received: Iterable[Range]) -> list[Range]:
    """The inclusive ranges of ``[0, size)`` not covered by ``received``, ascending, merged."""
    missing: list[Range] = []
    cursor = 0  # the first byte not covered by the ranges seen so far
    # In start order, a gap is wherever a range starts past the cursor: overlapping and
    # adjacent ranges need no merging first (one pass; a sorted list sorts in linear time).
    for start, end in sorted(received):
        if start > cursor:
            missing.append((cursor, start - 1))
        if end >= cursor:
            cursor = end + 1
    if cursor < size:
        missing.append((cursor, size - 1))
    return missing


def find_overlap(sorted_ranges: Sequence[Range], start: int, end: int) -> int | None:
    """Index of a range in ``sorted_ranges`` (sorted, disjoint) that intersects
    ``[start, end]``, or None. O(log n)."""
    i = bisect_right(sorted_ranges, (start, end))
    # The candidate before the insertion point may reach into [start, end];
    # the one at it may begin inside it.
    for j in (i - 1, i):
        if 0 <= j < len(sorted_ranges):
            s, e = sorted_ranges[j]
            if s <= end and start <= e:
                return j
    return None
