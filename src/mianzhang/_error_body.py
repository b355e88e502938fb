"""mianzhang's own JSON error body: ``{"error": {"type", "message", ...}}``. No I/O.

Every route that is not an LLM client API (streams, channels, jobs, files, tus uploads, tails,
the demo stream, operations) answers an error with this body before any stream starts
(``docs/errors.md``). ``type`` is named after the HTTP status (:data:`ERROR_TYPES`), so a
client branches on it without knowing the server's exception classes; ``message`` says what
went wrong in words; a few errors add fields (``problems`` for invalid input, ``policy`` for
rate limits). The LLM APIs answer in their own clients' shapes instead (OpenAI's under
``/v1/``, Anthropic's under ``/v1/messages``: ``mianzhang.server``'s error renderers).

It lives at the bottom of the package because the log reader (layer 3), the file service
(layer 4) and the server (layer 5) all answer in it.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["ERROR_TYPES", "error_body", "error_type"]

ERROR_TYPES: Final[dict[int, str]] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    423: "locked",
    429: "rate_limited",
    460: "checksum_mismatch",
    499: "cancelled",
    500: "internal_error",
    502: "upstream_error",
    503: "unavailable",
    504: "upstream_timeout",
}
"""HTTP status -> the body's ``type``."""


def error_type(status: int) -> str:
    """The ``type`` of an error answered with ``status`` (``internal_error`` for an unlisted
    5xx, ``invalid_request`` for an unlisted 4xx)."""
    found = ERROR_TYPES.get(status)
    if found is not None:
        return found
    return "internal_error" if status >= 500 else "invalid_request"


def error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    """``{"error": {"type", "message", **extra}}`` for an error answered with ``status``;
    ``type`` may be given in ``extra`` to name a more precise kind."""
    error: dict[str, Any] = {"type": error_type(status), "message": message}
    error.update(extra)
    return {"error": error}
