"""Conditional requests (RFC 9110 §13): entity tags, HTTP dates and the precondition order.

Pure functions, no I/O. :func:`evaluate_preconditions` follows the order of RFC 9110 §13.2.2:

1. ``If-Match`` (strong comparison; ``*`` matches any existing file) false -> 412;
2. else ``If-Unmodified-Since`` (a valid date) earlier than ``Last-Modified`` -> 412;
3. ``If-None-Match`` (weak comparison; ``*`` matches) true -> 304 for GET/HEAD, else 412;
4. else, for GET/HEAD, ``If-Modified-Since`` (a valid date) not earlier than
   ``Last-Modified`` -> 304;
5. then :func:`if_range_allows` decides whether a ``Range`` is honoured (§13.1.5).

Invalid dates are ignored, as the RFC requires. Entity-tag lists are scanned once, left to
right (linear in the header's length); malformed members match nothing.

Stored files never change after they are committed (a new upload gets a new id), so their
``Last-Modified`` is a strong validator in the sense of §8.8.2.2 and may be used by
``If-Range``; entity tags are always strong.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import formatdate, mktime_tz, parsedate_tz
from enum import StrEnum

__all__ = [
    "EntityTag",
    "Precondition",
    "Validators",
    "evaluate_preconditions",
    "format_http_date",
    "if_range_allows",
    "parse_entity_tags",
    "parse_http_date",
]

_OWS = " \t"
_MAX_DATE_LENGTH = 64


@dataclass(frozen=True, slots=True)
class EntityTag:
    """An entity tag as sent: ``opaque`` includes the double quotes (``'"abc"'``)."""

    opaque: str
    weak: bool = False

    def __str__(self) -> str:
        return f"W/{self.opaque}" if self.weak else self.opaque


@dataclass(frozen=True, slots=True)
class Validators:
    """The current validators of a representation: a strong ``etag`` (quoted) and its
    modification time in whole seconds since the epoch."""

    etag: str
    last_modified: int

    @property
    def last_modified_header(self) -> str:
        return format_http_date(self.last_modified)


class Precondition(StrEnum):
    PROCEED = "proceed"
    NOT_MODIFIED = "not_modified"  # 304
    FAILED = "failed"  # 412


def format_http_date(seconds: float) -> str:
    """IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(seconds, usegmt=True)


def parse_http_date(value: str | None) -> int | None:
    """An HTTP-date (IMF-fixdate, RFC 850 or asctime form) -> seconds; ``None`` if invalid."""
    if value is None or len(value) > _MAX_DATE_LENGTH:
        return None
    parsed = parsedate_tz(value.strip(_OWS))
    if parsed is None:
        return None
    try:
        return mktime_tz(parsed)
    except (OverflowError, ValueError):
        return None


def _valid_etagc(text: str) -> bool:
    # etagc = %x21 / %x23-7E / obs-text  (no DQUOTE, no controls, no space)
    return all(ch == "!" or "#" <= ch <= "~" or ch >= "\x80" for ch in text)


def parse_entity_tags(value: str) -> list[EntityTag] | None:
    """``*`` -> ``None``; otherwise the well-formed entity tags of the list, in order.

    One left-to-right scan. A malformed member is skipped up to the next comma.
    """
    if value.strip(_OWS) == "*":
        return None
    tags: list[EntityTag] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch in _OWS or ch == ",":
            i += 1
            continue
        weak = value.startswith("W/", i)
        start = i + 2 if weak else i
        end = value.find('"', start + 1) if start < n and value[start] == '"' else -1
        if end != -1:
            after = end + 1
            while after < n and value[after] in _OWS:
                after += 1
            opaque = value[start : end + 1]
            if (after == n or value[after] == ",") and _valid_etagc(opaque[1:-1]):
                tags.append(EntityTag(opaque, weak))
                i = after
                continue
        # malformed member: skip to the next comma (after the current position)
        comma = value.find(",", i + 1)
        i = n if comma == -1 else comma
    return tags


def _matches(header: str, etag: str, *, strong: bool) -> bool:
    tags = parse_entity_tags(header)
    if tags is None:
        return True  # "*": the representation exists
    if strong:
        return any(not tag.weak and tag.opaque == etag for tag in tags)
    return any(tag.opaque == etag for tag in tags)


def evaluate_preconditions(
    method: str,
    validators: Validators,
    *,
    if_match: str | None = None,
    if_none_match: str | None = None,
    if_modified_since: str | None = None,
    if_unmodified_since: str | None = None,
) -> Precondition:
    """Evaluate the preconditions of a request for an existing representation (§13.2.2)."""
    safe = method in ("GET", "HEAD")
    if if_match is not None:
        if not _matches(if_match, validators.etag, strong=True):
            return Precondition.FAILED
    elif if_unmodified_since is not None:
        date = parse_http_date(if_unmodified_since)
        if date is not None and validators.last_modified > date:
            return Precondition.FAILED
    if if_none_match is not None:
        if _matches(if_none_match, validators.etag, strong=False):
            return Precondition.NOT_MODIFIED if safe else Precondition.FAILED
    elif safe and if_modified_since is not None:
        date = parse_http_date(if_modified_since)
        if date is not None and validators.last_modified <= date:
            return Precondition.NOT_MODIFIED
    return Precondition.PROCEED


def if_range_allows(if_range: str | None, validators: Validators) -> bool:
    """Whether a ``Range`` may be honoured given ``If-Range`` (§13.1.5).

    Absent: yes. An entity tag: only if it is strong and equal to the current one. A date:
    only if it equals ``Last-Modified`` exactly. Anything else (malformed, weak tag): no, and
    the full representation is sent.
    """
    if if_range is None:
        return True
    value = if_range.strip(_OWS)
    if value.startswith(('"', "W/")):
        tags = parse_entity_tags(value)
        return (
            tags is not None
            and len(tags) == 1
            and not tags[0].weak
            and tags[0].opaque == validators.etag
        )
    date = parse_http_date(value)
    return date is not None and date == validators.last_modified
