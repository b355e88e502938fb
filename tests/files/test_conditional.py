"""Conditional requests (RFC 9110 §13): tags, dates, the evaluation order, If-Range."""

from __future__ import annotations

import pytest

from mianzhang.files import (
    EntityTag,
    Precondition,
    Validators,
    evaluate_preconditions,
    format_http_date,
    if_range_allows,
    parse_entity_tags,
    parse_http_date,
)

ETAG = '"abc"'
MTIME = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
V = Validators(etag=ETAG, last_modified=MTIME)
DATE = "Sun, 06 Nov 1994 08:49:37 GMT"
EARLIER = "Sun, 06 Nov 1994 08:49:36 GMT"
LATER = "Sun, 06 Nov 1994 08:49:38 GMT"


def test_http_dates_in_all_three_forms() -> None:
    assert format_http_date(MTIME) == DATE
    assert parse_http_date(DATE) == MTIME
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == MTIME  # RFC 850
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == MTIME  # asctime
    assert parse_http_date("yesterday") is None
    assert parse_http_date("x" * 1000) is None
    assert parse_http_date(None) is None


def test_entity_tag_lists() -> None:
    assert parse_entity_tags("*") is None
    assert parse_entity_tags(' "a" , W/"b",,"c,d"') == [
        EntityTag('"a"'),
        EntityTag('"b"', weak=True),
        EntityTag('"c,d"'),  # a comma inside the quotes is part of the tag
    ]
    # malformed members are skipped, the rest still parsed
    assert parse_entity_tags('abc, "ok", "unterminated') == [EntityTag('"ok"')]
    assert parse_entity_tags('"a" junk, "b"') == [EntityTag('"b"')]
    assert parse_entity_tags('"sp ace", "b"') == [EntityTag('"b"')]
    assert str(EntityTag('"x"', weak=True)) == 'W/"x"'


def test_entity_tag_scan_is_linear_on_hostile_input() -> None:
    # A huge malformed member is skipped in one jump to the next comma, then parsing goes on.
    hostile = '"a b' * 50_000 + ', "ok"'
    assert parse_entity_tags(hostile) == [EntityTag('"ok"')]
    # Quoted commas are tags, not separators.
    assert len(parse_entity_tags(", ".join(['","'] * 1000)) or []) == 1000


@pytest.mark.parametrize(
    ("headers", "method", "expected"),
    [
        ({}, "GET", Precondition.PROCEED),
        # If-Match: strong comparison
        ({"if_match": ETAG}, "GET", Precondition.PROCEED),
        ({"if_match": "*"}, "GET", Precondition.PROCEED),
        ({"if_match": '"other", "abc"'}, "GET", Precondition.PROCEED),
        ({"if_match": 'W/"abc"'}, "GET", Precondition.FAILED),  # weak never matches strongly
        ({"if_match": '"other"'}, "GET", Precondition.FAILED),
        # If-Unmodified-Since
        ({"if_unmodified_since": DATE}, "GET", Precondition.PROCEED),
        ({"if_unmodified_since": LATER}, "GET", Precondition.PROCEED),
        ({"if_unmodified_since": EARLIER}, "GET", Precondition.FAILED),
        ({"if_unmodified_since": "not a date"}, "GET", Precondition.PROCEED),  # ignored
        # If-Match takes precedence over If-Unmodified-Since (step 2 only without If-Match)
        ({"if_match": ETAG, "if_unmodified_since": EARLIER}, "GET", Precondition.PROCEED),
        # If-None-Match: weak comparison; 304 for GET/HEAD, 412 otherwise
        ({"if_none_match": ETAG}, "GET", Precondition.NOT_MODIFIED),
        ({"if_none_match": 'W/"abc"'}, "HEAD", Precondition.NOT_MODIFIED),
        ({"if_none_match": "*"}, "GET", Precondition.NOT_MODIFIED),
        ({"if_none_match": '"other"'}, "GET", Precondition.PROCEED),
        ({"if_none_match": ETAG}, "DELETE", Precondition.FAILED),
        # If-Modified-Since (GET/HEAD only, and only without If-None-Match)
        ({"if_modified_since": DATE}, "GET", Precondition.NOT_MODIFIED),
        ({"if_modified_since": LATER}, "HEAD", Precondition.NOT_MODIFIED),
        ({"if_modified_since": EARLIER}, "GET", Precondition.PROCEED),
        ({"if_modified_since": "garbage"}, "GET", Precondition.PROCEED),
        ({"if_modified_since": DATE}, "DELETE", Precondition.PROCEED),
        ({"if_none_match": '"other"', "if_modified_since": DATE}, "GET", Precondition.PROCEED),
        # 412 beats 304: If-Match is evaluated first
        ({"if_match": '"other"', "if_none_match": ETAG}, "GET", Precondition.FAILED),
    ],
)
def test_precondition_order(headers: dict[str, str], method: str, expected: Precondition) -> None:
    assert evaluate_preconditions(method, V, **headers) is expected


@pytest.mark.parametrize(
    ("if_range", "allowed"),
    [
        (None, True),
        (ETAG, True),
        ('"other"', False),
        ('W/"abc"', False),  # weak tags never satisfy If-Range
        (DATE, True),  # exactly Last-Modified
        (LATER, False),  # a date must match exactly
        (EARLIER, False),
        ("garbage", False),
        ('"abc", "abc"', False),  # If-Range takes one validator
    ],
)
def test_if_range(if_range: str | None, allowed: bool) -> None:
    assert if_range_allows(if_range, V) is allowed
