"""Byte-range arithmetic (pure functions), checked by examples and against brute force."""

from __future__ import annotations

import itertools
import random

import pytest

from uploadsession.ranges import Range, find_overlap, missing_ranges


def _bytes_of(ranges: list[Range]) -> set[int]:
    return {b for start, end in ranges for b in range(start, end + 1)}


def _random_disjoint(rng: random.Random, space: int) -> list[Range]:
    """Sorted disjoint inclusive ranges inside [0, space)."""
    ranges: list[Range] = []
    cursor = 0
    while cursor < space:
        cursor += rng.randint(0, 4)
        if cursor >= space:
            break
        end = min(space - 1, cursor + rng.randint(0, 5))
        ranges.append((cursor, end))
        cursor = end + 1 + rng.randint(0, 1)
    return ranges


# -- missing_ranges -----------------------------------------------------------------------


def test_nothing_received_means_the_whole_document_is_missing() -> None:
    assert missing_ranges(1024, []) == [(0, 1023)]


def test_everything_received_means_nothing_is_missing() -> None:
    assert missing_ranges(1024, [(0, 1023)]) == []


def test_gaps_at_the_start_middle_and_end_are_reported() -> None:
    assert missing_ranges(100, [(10, 19), (40, 49)]) == [(0, 9), (20, 39), (50, 99)]


def test_adjacent_received_ranges_leave_no_gap_between_them() -> None:
    assert missing_ranges(30, [(0, 9), (10, 19)]) == [(20, 29)]


def test_unsorted_received_ranges_give_ascending_missing_ranges() -> None:
    assert missing_ranges(30, [(20, 24), (0, 4)]) == [(5, 19), (25, 29)]


def test_a_one_byte_document_is_missing_its_byte() -> None:
    assert missing_ranges(1, []) == [(0, 0)]


def test_missing_ranges_match_brute_force_on_random_input() -> None:
    rng = random.Random(99)
    for _ in range(500):
        size = rng.randint(1, 80)
        received = _random_disjoint(rng, size)
        rng.shuffle(received)
        missing = missing_ranges(size, received)
        assert _bytes_of(missing) == set(range(size)) - _bytes_of(received)
        # ascending, and no two touch (else they would have been one range)
        assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(missing))


# -- find_overlap -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 9, 0),  # identical
        (5, 5, 0),  # inside
        (9, 10, 0),  # straddles the end of the first
        (10, 19, None),  # exactly the gap
        (15, 25, 1),  # reaches into the second
        (19, 19, None),
        (31, 40, None),  # after everything
    ],
)
def test_find_overlap_examples(start: int, end: int, expected: int | None) -> None:
    assert find_overlap([(0, 9), (20, 30)], start, end) == expected


def test_a_range_covering_several_finds_one_of_them() -> None:
    assert find_overlap([(0, 9), (20, 30)], 0, 100) in (0, 1)


def test_find_overlap_in_no_ranges_is_none() -> None:
    assert find_overlap([], 0, 10) is None


def test_find_overlap_agrees_with_brute_force_on_random_input() -> None:
    rng = random.Random(20240429)
    for _ in range(3000):
        ranges = _random_disjoint(rng, rng.randint(1, 60))
        start = rng.randint(0, 65)
        end = start + rng.randint(0, 12)
        overlapping = [i for i, (s, e) in enumerate(ranges) if s <= end and start <= e]
        found = find_overlap(ranges, start, end)
        if overlapping:
            assert found in overlapping, (ranges, start, end, found)
        else:
            assert found is None, (ranges, start, end, found)
