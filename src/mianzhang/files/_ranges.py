"""Byte ranges (RFC 9110 §14): evaluate a ``Range`` header against a representation's size.

Pure functions, no I/O. Decisions, each allowed by the RFC and chosen to be safe:

* A ``Range`` header this parser does not understand (another unit, a syntax error, a range
  whose last position is before its first) is **ignored**: the answer is the full 200
  response (§14.2: a server "MAY ignore or reject" an invalid ranges-specifier; a full response
  is always correct).
* Range-specs that are not satisfiable are dropped; when none is left the answer is **416**
  with ``Content-Range: bytes */SIZE`` (§14.1.1, §15.5.17).
* Satisfiable ranges are sorted and coalesced when they overlap or touch (§14.6: "a server MAY
  coalesce any of the ranges that overlap ... regardless of the order in which the
  corresponding range-spec appeared"). That costs one sort and one linear pass:
  O(n log n) for n range-specs, never the quadratic merge of CVE-2025-62727.
* More than ``max_ranges`` ranges left after coalescing: the ``Range`` header is **ignored**
  (full 200), as nginx does with ``max_ranges``. §14.2 says servers "ought to ignore, coalesce,
  or reject egregious range requests"; ignoring is chosen over 416 because 416 would tell the
  client its ranges are unsatisfiable, which they are not.
* More than ``max_specs`` range-specs in the header: ignored without parsing them (they are
  counted with ``str.count``, in C), so a huge header costs one scan.
* An empty representation with a satisfiable suffix range (``bytes=-5``): the full, empty 200
  response, since ``Content-Range`` cannot describe a range of zero bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DEFAULT_MAX_RANGES",
    "DEFAULT_MAX_SPECS",
    "RangeDecision",
    "RangeOutcome",
    "coalesce_ranges",
    "evaluate_range",
]

DEFAULT_MAX_RANGES = 100
DEFAULT_MAX_SPECS = 10_000
# Any position written with more than 18 significant digits is past every file's end.
_HUGE = 1 << 63
_OWS = " \t"


class RangeOutcome(StrEnum):
    FULL = "full"  # ignore Range: send the whole representation (200)
    PARTIAL = "partial"  # send ``ranges`` (206)
    UNSATISFIABLE = "unsatisfiable"  # 416 with ``Content-Range: bytes */size``


@dataclass(frozen=True, slots=True)
class RangeDecision:
    """What to send. ``ranges`` (for PARTIAL) are inclusive ``(first, last)`` byte positions,
    sorted, disjoint and not adjacent. ``reason`` says why a FULL answer ignores ``Range``:
    ``absent``, ``unit``, ``syntax``, ``too_many`` or ``empty``."""

    outcome: RangeOutcome
    ranges: tuple[tuple[int, int], ...] = ()
    reason: str = ""


def _position(text: str) -> int | None:
    """ASCII digits -> int (huge values clamp to ``_HUGE``, never an O(n²) int parse)."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    significant = text.lstrip("0")
    if len(significant) > 18:
        return _HUGE
    return int(significant or "0")


def coalesce_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort inclusive ranges and merge those that overlap or are adjacent.

    One sort (O(n log n) comparisons) and one linear pass; the input list is not modified.
    """
    if not ranges:
        return []
    ordered = sorted(ranges)
    merged: list[tuple[int, int]] = []
    start, end = ordered[0]
    for first, last in ordered[1:]:
        if first <= end + 1:
            if last > end:
                end = last
        else:
            merged.append((start, end))
            start, end = first, last
    merged.append((start, end))
    return merged


_FULL_ABSENT = RangeDecision(RangeOutcome.FULL, reason="absent")
_FULL_UNIT = RangeDecision(RangeOutcome.FULL, reason="unit")
_FULL_SYNTAX = RangeDecision(RangeOutcome.FULL, reason="syntax")
_FULL_TOO_MANY = RangeDecision(RangeOutcome.FULL, reason="too_many")
_FULL_EMPTY = RangeDecision(RangeOutcome.FULL, reason="empty")
_UNSATISFIABLE = RangeDecision(RangeOutcome.UNSATISFIABLE)


def evaluate_range(
    header: str | None,
    size: int,
    *,
    max_ranges: int = DEFAULT_MAX_RANGES,
    max_specs: int = DEFAULT_MAX_SPECS,
) -> RangeDecision:
    """Decide how to answer ``Range: header`` for a representation of ``size`` bytes.

    Preconditions and ``If-Range`` are evaluated by the caller first (see ``_conditional``);
    this only looks at the ranges. Runs in O(n log n) for n range-specs.
    """
    if header is None:
        return _FULL_ABSENT
    unit, eq, range_set = header.partition("=")
    if not eq:
        return _FULL_SYNTAX
    if unit.strip(_OWS).lower() != "bytes":
        return _FULL_UNIT
    if range_set.count(",") + 1 > max_specs:
        return _FULL_TOO_MANY
    try:
        satisfiable, suffix_on_empty = _satisfiable(range_set, size)
    except _RangeSyntaxError:
        return _FULL_SYNTAX
    if not satisfiable:
        return _FULL_EMPTY if suffix_on_empty else _UNSATISFIABLE
    merged = coalesce_ranges(satisfiable)
    if len(merged) > max_ranges:
        return _FULL_TOO_MANY
    return RangeDecision(RangeOutcome.PARTIAL, tuple(merged))


class _RangeSyntaxError(ValueError):
    """A ranges-specifier this parser does not understand (the header is then ignored)."""


def _satisfiable(range_set: str, size: int) -> tuple[list[tuple[int, int]], bool]:
    """The satisfiable ranges of a byte-range-set (unsatisfiable specs dropped), and whether
    a satisfiable suffix range met an empty representation. :class:`_RangeSyntaxError` for a
    malformed spec or a set without any."""
    satisfiable: list[tuple[int, int]] = []
    any_spec = False
    suffix_on_empty = False
    for element in range_set.split(","):
        spec = element.strip(_OWS)
        if not spec:  # empty list elements are allowed by the #list rule (RFC 9110 §5.6.1)
            continue
        any_spec = True
        first, last = _parse_spec(spec)
        if first is None:  # suffix-range: "-N", the last N bytes
            if last == 0:
                continue  # unsatisfiable
            if size == 0:
                suffix_on_empty = True
                continue
            satisfiable.append((max(0, size - last), size - 1))
        elif first < size:  # else unsatisfiable
            satisfiable.append((first, min(last, size - 1)))
    if not any_spec:
        raise _RangeSyntaxError(range_set)
    return satisfiable, suffix_on_empty


def _parse_spec(spec: str) -> tuple[int | None, int]:
    """``first-last`` -> (first, last); ``first-`` -> (first, a position past every end);
    a suffix ``-N`` -> (None, N). :class:`_RangeSyntaxError` if malformed or last < first."""
    first_text, dash, last_text = spec.partition("-")
    if not dash:
        raise _RangeSyntaxError(spec)
    if not first_text:
        length = _position(last_text)
        if length is None:
            raise _RangeSyntaxError(spec)
        return None, length
    first = _position(first_text)
    if first is None:
        raise _RangeSyntaxError(spec)
    if not last_text:
        return first, _HUGE
    last = _position(last_text)
    if last is None or last < first:
        raise _RangeSyntaxError(spec)
    return first, last
