"""Segment planning: the missing ranges a server reports, and the segments that send them.

Segments are cut on a grid of ``segment_size`` counted from byte 0 (a missing range that
starts off the grid gets a short first segment). Two uploaders with the same segment size
therefore send identical segments, which the server accepts as harmless repeats instead of
refusing them as overlaps. Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Any

#: Graph's upload sessions want segments in multiples of 320 KiB.
SEGMENT_UNIT = 320 * 1024
#: The server's MAX_SEGMENT_BYTES default.
MAX_SEGMENT_SIZE = 10 * 1024 * 1024
DEFAULT_SEGMENT_SIZE = 16 * SEGMENT_UNIT  # 5 MiB

Range = tuple[int, int]  # inclusive byte range (start, end)


def check_segment_size(segment_size: int) -> None:
    """Raise ValueError unless ``segment_size`` is a positive multiple of 320 KiB ≤ 10 MiB."""
    if segment_size <= 0 or segment_size % SEGMENT_UNIT or segment_size > MAX_SEGMENT_SIZE:
        raise ValueError(
            f"segment size must be a multiple of 320 KiB ({SEGMENT_UNIT} bytes) and at most "
            f"{MAX_SEGMENT_SIZE} bytes (10 MiB); got {segment_size}"
        )


def missing_ranges(session: dict[str, Any], size: int | None = None) -> list[Range]:
    """The missing ranges of a session (``missingRanges``) or of Graph's uploadSession
    (``nextExpectedRanges``), as ints, ascending.

    Graph writes ``start``/``end`` as decimal strings; numbers are accepted too, and an
    open-ended ``"1024-"`` range (OneDrive's style) runs to the end of the document, whose
    ``size`` is the session's own unless given (an uploadSession has none).
    """
    raw = session.get("missingRanges")
    if raw is None:
        raw = session.get("nextExpectedRanges", [])
    if size is None:
        size = int(session.get("size", 0))
    ranges: list[Range] = []
    for item in raw:
        if isinstance(item, str):  # "start-end" or "start-"
            start_text, _, end_text = item.partition("-")
            start, end = int(start_text), int(end_text) if end_text else size - 1
        else:
            start = int(item["start"])
            end = int(item["end"]) if item.get("end") not in (None, "") else size - 1
        if end >= start:
            ranges.append((start, end))
    return sorted(ranges)


def missing_bytes(ranges: list[Range]) -> int:
    return sum(end - start + 1 for start, end in ranges)


def plan_segments(missing: list[Range], segment_size: int) -> list[Range]:
    """Split missing ranges into segments of at most ``segment_size`` bytes.

    Cuts fall on multiples of ``segment_size`` counted from byte 0, so a missing range that
    starts or ends off the grid gets a shorter first or last segment, and every uploader
    with the same segment size cuts the document the same way.
    """
    if segment_size <= 0:
        raise ValueError("segment size must be positive")
    segments: list[Range] = []
    for start, end in missing:
        cursor = start
        while cursor <= end:
            boundary = (cursor // segment_size + 1) * segment_size - 1
            last = min(end, boundary)
            segments.append((cursor, last))
            cursor = last + 1
    return segments


def format_ranges(ranges: list[Range]) -> str:
    """``0-99, 200-299`` (inclusive), or ``none``."""
    return ", ".join(f"{s}-{e}" for s, e in ranges) or "none"
