"""Small HTTP helpers shared by downloads, uploads and tus: JSON error bodies, header access."""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.responses import Response

from .._error_body import error_body
from .._errors import FilesError

__all__ = ["combined_header", "error_response", "files_error_response", "lease_lost_response"]


def error_response(
    status: int,
    message: str,
    *,
    kind: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """mianzhang's error body (``mianzhang._error_body``: ``{"error": {"type", "message"}}``)
    with ``status`` (a 4xx before any body); ``kind`` defaults to the name of the status
    (``not_found``, ``payload_too_large``...)."""
    body = error_body(status, message, **({"type": kind} if kind else {}))
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def files_error_response(exc: FilesError, *, headers: Mapping[str, str] | None = None) -> Response:
    """The JSON error answer for a :class:`~mianzhang.FilesError` (its ``status_code``)."""
    all_headers = dict(headers or {})
    if exc.status_code in (408, 413):
        # The body was not read to its end: the connection cannot be reused.
        all_headers.setdefault("Connection", "close")
    return error_response(exc.status_code, str(exc), headers=all_headers)


def lease_lost_response(*, headers: Mapping[str, str] | None = None) -> Response:
    """503 for an upload stopped because its progress stream's producer lease was lost
    (:class:`~mianzhang.LeaseLost`: readers were told it stopped); the client may retry."""
    all_headers = {"Retry-After": "1", "Connection": "close", **(headers or {})}
    message = "this instance lost the upload's progress stream (its lease expired): retry"
    return error_response(503, message, kind="producer_lost", headers=all_headers)


def combined_header(headers: Headers, name: str) -> str | None:
    """All values of a list-valued header joined with ``", "`` (RFC 9110 §5.3), or ``None``."""
    values = headers.getlist(name)
    if not values:
        return None
    return ", ".join(values)
