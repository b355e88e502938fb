"""Range evaluation (RFC 9110 §14): syntax, satisfiability, coalescing, caps, complexity."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mianzhang.files import RangeOutcome, coalesce_ranges, evaluate_range

FULL, PARTIAL, UNSAT = RangeOutcome.FULL, RangeOutcome.PARTIAL, RangeOutcome.UNSATISFIABLE


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, ((0, 0),)),
        ("bytes=0-9", 10, ((0, 9),)),
        ("bytes=0-999", 10, ((0, 9),)),  # last-pos past the end is clamped
        ("bytes=5-", 10, ((5, 9),)),
        ("bytes=-3", 10, ((7, 9),)),
        ("bytes=-30", 10, ((0, 9),)),  # suffix longer than the file: the whole file
        ("BYTES=1-2", 10, ((1, 2),)),  # the unit is case-insensitive
        (" bytes = 1-2 ", 10, ((1, 2),)),
        ("bytes=1-2, ,4-5", 10, ((1, 2), (4, 5))),  # empty list elements are allowed
        ("bytes=\t1-2\t,\t4-5", 10, ((1, 2), (4, 5))),
        ("bytes=000001-0000002", 10, ((1, 2),)),
        ("bytes=1-2,99-100", 10, ((1, 2),)),  # an unsatisfiable spec is dropped
        ("bytes=0-99999999999999999999999999", 10, ((0, 9),)),  # huge numbers clamp
    ],
)
def test_satisfiable_ranges(header: str, size: int, expected: tuple[tuple[int, int], ...]) -> None:
    decision = evaluate_range(header, size)
    assert decision.outcome is PARTIAL
    assert decision.ranges == expected


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "absent"),
        ("items=0-1", "unit"),
        ("bytes 0-1", "syntax"),
        ("bytes=", "syntax"),
        ("bytes=,", "syntax"),
        ("bytes=5-2", "syntax"),  # last < first: invalid, the header is ignored
        ("bytes=a-b", "syntax"),
        ("bytes=1-2-3", "syntax"),
        ("bytes=--1", "syntax"),
        ("bytes=0x1-2", "syntax"),
        ("bytes=-", "syntax"),
        ("bytes=1", "syntax"),
        ("bytes=+1-2", "syntax"),
        ("bytes=１-2", "syntax"),  # non-ASCII digits
        ("bytes=0-1,5-2", "syntax"),  # one invalid spec invalidates the whole header
    ],
)
def test_ignored_headers_mean_full_response(header: str | None, reason: str) -> None:
    decision = evaluate_range(header, 10)
    assert decision.outcome is FULL
    assert decision.reason == reason
    assert decision.ranges == ()


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=10-20", "bytes=-0", "bytes=50-60,11-"])
def test_unsatisfiable(header: str) -> None:
    assert evaluate_range(header, 10).outcome is UNSAT


def test_empty_representation() -> None:
    # RFC 9110 §14.1.3: only a non-zero suffix range is satisfiable on an empty file; it
    # selects nothing, so the answer is the (empty) full response.
    assert evaluate_range("bytes=-5", 0).outcome is FULL
    assert evaluate_range("bytes=-5", 0).reason == "empty"
    assert evaluate_range("bytes=0-0", 0).outcome is UNSAT
    assert evaluate_range("bytes=0-", 0).outcome is UNSAT


def test_overlapping_and_adjacent_ranges_are_coalesced_and_sorted() -> None:
    decision = evaluate_range("bytes=50-59,0-9,5-14,15-19,30-30,-5", 100)
    assert decision.ranges == ((0, 19), (30, 30), (50, 59), (95, 99))


def test_contained_range_does_not_shrink_the_union() -> None:
    assert coalesce_ranges([(0, 100), (10, 20), (30, 40)]) == [(0, 100)]


def test_coalesce_does_not_modify_input() -> None:
    ranges = [(5, 6), (0, 1)]
    coalesce_ranges(ranges)
    assert ranges == [(5, 6), (0, 1)]


def test_cap_on_ranges_after_coalescing() -> None:
    # 101 disjoint ranges: more than max_ranges -> the Range header is ignored (200).
    disjoint = "bytes=" + ",".join(f"{2 * i}-{2 * i}" for i in range(101))
    assert evaluate_range(disjoint, 1000).outcome is FULL
    assert evaluate_range(disjoint, 1000).reason == "too_many"
    assert evaluate_range(disjoint, 1000, max_ranges=101).outcome is PARTIAL
    # Thousands of specs that coalesce into one range are served.
    adjacent = "bytes=" + ",".join(f"{i}-{i}" for i in range(5000))
    decision = evaluate_range(adjacent, 10_000)
    assert decision.outcome is PARTIAL
    assert decision.ranges == ((0, 4999),)


def test_cap_on_specs_before_parsing() -> None:
    header = "bytes=" + ",".join(["0-0"] * 11)
    assert evaluate_range(header, 10, max_specs=10).reason == "too_many"
    assert evaluate_range(header, 10, max_specs=11).outcome is PARTIAL


class CountingInt(int):
    """An int that counts every comparison made on it (shared counter)."""

    comparisons = 0

    def _count(self) -> None:
        CountingInt.comparisons += 1

    def __lt__(self, other: object) -> bool:
        self._count()
        return int(self) < int(other)  # type: ignore[call-overload]

    def __le__(self, other: object) -> bool:
        self._count()
        return int(self) <= int(other)  # type: ignore[call-overload]

    def __gt__(self, other: object) -> bool:
        self._count()
        return int(self) > int(other)  # type: ignore[call-overload]

    def __ge__(self, other: object) -> bool:
        self._count()
        return int(self) >= int(other)  # type: ignore[call-overload]

    def __eq__(self, other: object) -> bool:
        self._count()
        return int(self) == int(other)  # type: ignore[call-overload]

    __hash__ = int.__hash__

    def __add__(self, other: object) -> CountingInt:
        return CountingInt(int(self) + int(other))  # type: ignore[call-overload]


@pytest.mark.parametrize("n", [1000, 4000, 16000])
def test_coalescing_is_n_log_n_in_comparisons(n: int) -> None:
    """CVE-2025-62727 was a quadratic merge; count comparisons instead of timing."""
    # Shuffled, partly overlapping tiny ranges: a worst case for naive pairwise merging.
    order = [(i * 7919) % n for i in range(n)]
    ranges = [(CountingInt(3 * k), CountingInt(3 * k + (k % 3))) for k in order]
    CountingInt.comparisons = 0
    merged = coalesce_ranges(ranges)
    comparisons = CountingInt.comparisons
    assert len(merged) > 1
    # sort: <= ~n log2 n tuple comparisons (each up to 3 int comparisons) + a linear pass.
    assert comparisons <= 4 * n * math.log2(n) + 4 * n, comparisons


def test_thousands_of_tiny_ranges_cost_grows_linearithmically() -> None:
    """Whole evaluation (parse + sort + merge): the comparison count of a 4x larger header
    grows by about 4x (well below the 16x a quadratic algorithm would show)."""

    def cost(n: int) -> int:
        order = [(i * 7919) % n for i in range(n)]  # a permutation (7919 is prime)
        ranges = [(CountingInt(2 * i), CountingInt(2 * i)) for i in order]
        CountingInt.comparisons = 0
        coalesce_ranges(ranges)
        return CountingInt.comparisons

    small, large = cost(2000), cost(8000)
    assert large < 6 * small, (small, large)


spec = st.one_of(
    st.tuples(st.integers(0, 300), st.integers(0, 300))
    .map(lambda t: (min(t), max(t)))
    .map(lambda t: f"{t[0]}-{t[1]}"),
    st.integers(0, 300).map(lambda n: f"{n}-"),
    st.integers(0, 300).map(lambda n: f"-{n}"),
)


def reference(specs: list[str], size: int) -> set[int]:
    """The bytes RFC 9110 §14.1.2 selects, computed naively."""
    selected: set[int] = set()
    for text in specs:
        first, _, last = text.partition("-")
        if not first:
            selected.update(range(max(0, size - int(last)), size))
        else:
            end = int(last) if last else size - 1
            selected.update(range(int(first), min(end, size - 1) + 1))
    return selected


@given(st.lists(spec, min_size=1, max_size=30), st.integers(1, 250))
def test_same_bytes_as_a_naive_reference(specs: list[str], size: int) -> None:
    decision = evaluate_range("bytes=" + ",".join(specs), size, max_ranges=1000)
    expected = reference(specs, size)
    if not expected:
        assert decision.outcome is UNSAT
        return
    assert decision.outcome is PARTIAL
    got: set[int] = set()
    previous_end = -2
    for first, last in decision.ranges:
        assert first > previous_end + 1  # sorted, disjoint, not adjacent
        assert 0 <= first <= last < size
        got.update(range(first, last + 1))
        previous_end = last
    assert got == expected
