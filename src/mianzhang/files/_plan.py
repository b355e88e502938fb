"""Planning the answer to a download: pure, no I/O.

:func:`plan_download` decides, from the method, the request headers and the file's size and
validators, the status, the headers and which byte ranges to send (RFC 9110 §13, §14,
§15.3.7): preconditions (304/412) first, then ``If-Range``, then ``Range`` (206 with one
range or ``multipart/byteranges``, 416, or the full 200). ``HEAD`` gets the headers of the
corresponding ``GET``; ``Range`` is honoured for ``GET`` only (§14.2).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from starlette.datastructures import Headers

from ._conditional import Precondition, Validators, evaluate_preconditions, if_range_allows
from ._digest import repr_digest
from ._http import combined_header
from ._names import DEFAULT_CONTENT_TYPE, content_disposition
from ._ranges import DEFAULT_MAX_RANGES, DEFAULT_MAX_SPECS, RangeOutcome, evaluate_range

__all__ = ["DownloadPlan", "Part", "plan_download"]


@dataclass(frozen=True, slots=True)
class Part:
    """One piece of the body: ``prefix`` bytes, then the file's bytes ``start..end``
    (inclusive; ``end < start`` means no file bytes)."""

    prefix: bytes
    start: int
    end: int

    @property
    def length(self) -> int:
        return len(self.prefix) + max(0, self.end - self.start + 1)


@dataclass(frozen=True, slots=True)
class DownloadPlan:
    """The answer to send: ``status``, ``headers``, then either the file ``parts`` followed by
    ``trailer`` (200/206), or ``body`` (304/412/416). ``send_body`` is false for HEAD."""

    status: int
    headers: list[tuple[str, str]]
    parts: list[Part] = field(default_factory=list)
    trailer: bytes = b""
    body: bytes = b""
    send_body: bool = True

    @property
    def content_length(self) -> int:
        return sum(part.length for part in self.parts) + len(self.trailer) + len(self.body)


def _representation_headers(
    validators: Validators, *, filename: str | None, sha256: str | None
) -> list[tuple[str, str]]:
    headers = [
        ("accept-ranges", "bytes"),
        ("etag", validators.etag),
        ("last-modified", validators.last_modified_header),
        ("content-disposition", content_disposition(filename)),
        ("x-content-type-options", "nosniff"),
        ("content-security-policy", "default-src 'none'; sandbox"),
    ]
    if sha256 is not None:
        headers.append(("repr-digest", repr_digest(sha256)))
    return headers


def plan_download(
    method: str,
    request_headers: Headers,
    *,
    size: int,
    validators: Validators,
    content_type: str = DEFAULT_CONTENT_TYPE,
    filename: str | None = None,
    sha256: str | None = None,
    max_ranges: int = DEFAULT_MAX_RANGES,
    max_range_specs: int = DEFAULT_MAX_SPECS,
    boundary: str | None = None,
) -> DownloadPlan:
    """Decide the response to ``method`` (GET or HEAD) for a file of ``size`` bytes.

    Order: preconditions (304/412) first, then ``If-Range``, then ``Range`` (206/416 or the
    full 200). Work is O(n log n) in the number of range-specs. A HEAD plan has the headers
    of the GET plan (``Content-Length`` included) and no body.
    """
    head = method == "HEAD"
    verdict = _preconditions(method, request_headers, validators)
    if verdict is Precondition.NOT_MODIFIED:
        return _not_modified(validators)
    if verdict is Precondition.FAILED:
        return _precondition_failed(send_body=not head)
    range_header = _range_header(method, request_headers, validators)
    decision = evaluate_range(range_header, size, max_ranges=max_ranges, max_specs=max_range_specs)
    if decision.outcome is RangeOutcome.UNSATISFIABLE:
        return _unsatisfiable(size, send_body=not head)
    common = _representation_headers(validators, filename=filename, sha256=sha256)
    if decision.outcome is RangeOutcome.FULL:
        plan = DownloadPlan(
            200, [*common, ("content-type", content_type)], [Part(b"", 0, size - 1)]
        )
    elif len(decision.ranges) == 1:
        plan = _single_range(decision.ranges[0], size, common, content_type)
    else:
        plan = _byteranges(decision.ranges, size, common, content_type, boundary)
    plan.headers.append(("content-length", str(plan.content_length)))
    if head:
        return DownloadPlan(plan.status, plan.headers, send_body=False)
    return plan


def _preconditions(method: str, request_headers: Headers, validators: Validators) -> Precondition:
    """The verdict of the request's conditional headers (RFC 9110 §13.2.2)."""
    return evaluate_preconditions(
        method,
        validators,
        if_match=combined_header(request_headers, "if-match"),
        if_none_match=combined_header(request_headers, "if-none-match"),
        if_modified_since=request_headers.get("if-modified-since"),
        if_unmodified_since=request_headers.get("if-unmodified-since"),
    )


def _not_modified(validators: Validators) -> DownloadPlan:
    """304: the validators, no body."""
    return DownloadPlan(
        304,
        [("etag", validators.etag), ("last-modified", validators.last_modified_header)],
        send_body=False,
    )


def _precondition_failed(*, send_body: bool) -> DownloadPlan:
    """412 with a JSON error body."""
    body = b'{"error":{"type":"precondition_failed","message":"a precondition failed"}}'
    return DownloadPlan(
        412,
        [("content-type", "application/json"), ("content-length", str(len(body)))],
        body=body,
        send_body=send_body,
    )


def _range_header(method: str, request_headers: Headers, validators: Validators) -> str | None:
    """The ``Range`` to honour: a GET's, unless its ``If-Range`` no longer matches."""
    range_header = request_headers.get("range") if method == "GET" else None
    if range_header is not None and not if_range_allows(
        request_headers.get("if-range"), validators
    ):
        return None
    return range_header


def _unsatisfiable(size: int, *, send_body: bool) -> DownloadPlan:
    """416 with ``Content-Range: bytes */SIZE`` and a JSON error body."""
    body = (
        b'{"error":{"type":"range_not_satisfiable",'
        b'"message":"none of the requested ranges is within the file"}}'
    )
    return DownloadPlan(
        416,
        [
            ("content-range", f"bytes */{size}"),
            ("accept-ranges", "bytes"),
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
        ],
        body=body,
        send_body=send_body,
    )


def _single_range(
    byte_range: tuple[int, int], size: int, common: list[tuple[str, str]], content_type: str
) -> DownloadPlan:
    """206 with one range: its bytes as the body, ``Content-Range`` in the headers."""
    start, end = byte_range
    return DownloadPlan(
        206,
        [
            *common,
            ("content-type", content_type),
            ("content-range", f"bytes {start}-{end}/{size}"),
        ],
        [Part(b"", start, end)],
    )


def _byteranges(
    ranges: tuple[tuple[int, int], ...],
    size: int,
    common: list[tuple[str, str]],
    content_type: str,
    boundary: str | None,
) -> DownloadPlan:
    """206 ``multipart/byteranges`` (RFC 9110 §14.6): each range behind its part headers,
    then the closing boundary (``boundary``, or a random one)."""
    mark = boundary or secrets.token_hex(16)
    parts: list[Part] = []
    for index, (start, end) in enumerate(ranges):
        prefix = (b"" if index == 0 else b"\r\n") + (
            f"--{mark}\r\n"
            f"content-type: {content_type}\r\n"
            f"content-range: bytes {start}-{end}/{size}\r\n\r\n"
        ).encode("ascii")
        parts.append(Part(prefix, start, end))
    return DownloadPlan(
        206,
        [*common, ("content-type", f"multipart/byteranges; boundary={mark}")],
        parts,
        trailer=f"\r\n--{mark}--\r\n".encode("ascii"),
    )
