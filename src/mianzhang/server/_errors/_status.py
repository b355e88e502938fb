"""What every error shape shares: the HTTP status of an exception, its headers, its message.

The status is chosen from the exception's class (:data:`_STATUS`; classes that carry their own
``status_code``: :class:`~mianzhang.RequestError`, :class:`~mianzhang.FilesError`,
:class:`~mianzhang.AuthError`; LLM errors by ``mianzhang.llm.error_status``); anything that is
not mianzhang's own is a 500 whose message says nothing of the internals.
"""

from __future__ import annotations

from typing import Any, Final

from ... import _errors as e
from ...llm import error_status

__all__ = ["extra_fields", "headers_for", "message_of", "rate_limit_headers", "status_of"]

_STATUS: Final[tuple[tuple[type[e.MianzhangError], int], ...]] = (
    (e.StreamNotFound, 404),
    (e.StreamClosedError, 409),
    (e.BackendUnavailable, 503),
    (e.JobNotFound, 404),
    (e.UnknownJobType, 400),
    (e.InvalidJobInput, 400),
    (e.JobQueueFull, 503),
    (e.ChatNotFound, 404),
    (e.ChatConflict, 409),
    (e.SSEError, 400),
    (e.RateLimited, 429),
    (e.Draining, 503),
)
"""Exception class -> status, first match wins (classes without a ``status_code``)."""

INTERNAL_MESSAGE: Final = "internal server error"


def status_of(exc: BaseException) -> int:
    """The HTTP status answering ``exc`` before any stream starts."""
    if isinstance(exc, e.RequestError | e.FilesError | e.AuthError):
        return int(exc.status_code)
    if isinstance(exc, e.LLMError):
        return error_status(exc)
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def message_of(exc: BaseException) -> str:
    """The message a client sees: the exception's own text for mianzhang's errors, nothing of
    an unexpected one."""
    if isinstance(exc, e.MianzhangError):
        return str(exc) or type(exc).__name__
    return INTERNAL_MESSAGE


def rate_limit_headers(exc: e.RateLimited) -> dict[str, str]:
    """``Retry-After`` and the IETF RateLimit headers (draft-ietf-httpapi-ratelimit-headers)."""
    policy = f'"{exc.policy}";q={exc.quota}' + (f";w={exc.window}" if exc.window else "")
    return {
        "Retry-After": str(exc.retry_after),
        "RateLimit-Policy": policy,
        "RateLimit": f'"{exc.policy}";r=0;t={exc.retry_after}',
    }


def headers_for(exc: BaseException, status: int) -> dict[str, str]:
    """The headers an error answer carries, whatever its shape: ``WWW-Authenticate`` (401),
    the rate-limit headers (429), ``Allow`` (405), ``Retry-After`` (draining, a full queue)
    and ``Connection: close`` where the rest of the request will not be read."""
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, e.RateLimited):
        headers.update(rate_limit_headers(exc))
    elif isinstance(exc, e.MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allowed)
    elif isinstance(exc, e.Draining):
        headers.update({"Retry-After": "1", "Connection": "close"})
    elif isinstance(exc, e.JobQueueFull):
        headers["Retry-After"] = "1"
    if status in (408, 413):  # RFC 9110 §15.5.9: the rest of the request will not be read
        headers["Connection"] = "close"
    return headers


def extra_fields(exc: BaseException) -> dict[str, Any]:
    """Fields some errors add to mianzhang's body: ``problems`` (invalid input, one
    ``{"loc", "msg"}`` per field) and ``policy`` (the rate limit that refused)."""
    if isinstance(exc, e.InvalidRequest | e.InvalidJobInput) and exc.problems:
        return {"problems": exc.problems}
    if isinstance(exc, e.RateLimited):
        return {"policy": exc.policy}
    return {}
