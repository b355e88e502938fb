"""Gateway errors in OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``.

The HTTP status chosen for an upstream failure describes the gateway's view: an upstream rate
limit stays 429 (the client should slow down), a bad request stays 400, an upstream's auth or
server failure is 502 (not the client's fault), a timeout 504. An error the upstream reported
inside its stream (:class:`UpstreamStreamError`) is judged by the status its type stands for,
as if the upstream had answered it. A request the upstream's API cannot express
(:class:`UpstreamUnsupported`: nothing was sent) is the client's: 400.
"""

from __future__ import annotations

from typing import Any, Final

from .._errors import (
    GenerationCancelled,
    GenerationLost,
    InvalidLLMRequest,
    LLMError,
    ModelNotFound,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamStreamError,
    UpstreamTimeout,
    UpstreamUnsupported,
)

__all__ = ["error_payload", "error_status"]

_STATUSES: Final[tuple[tuple[type[LLMError], int], ...]] = (
    (ModelNotFound, 404),
    (InvalidLLMRequest, 400),
    (UpstreamUnsupported, 400),
    (UpstreamTimeout, 504),
    (GenerationCancelled, 499),
    (GenerationLost, 503),
)
"""Exception class -> status, first match wins (the classes that need no inspection)."""

_KEPT_STATUSES: Final = frozenset({400, 404, 413, 422, 429})
"""Upstream statuses answered as they are: about the request, or the upstream's rate limit."""

_INVALID_REQUEST_STATUSES: Final = frozenset({400, 413, 422})


def _upstream_status(exc: LLMError) -> int | None:
    """The HTTP status an upstream answered (or, inside its stream, stood for)."""
    if isinstance(exc, UpstreamStatusError | UpstreamStreamError):
        return exc.status_code
    return None


def error_status(exc: LLMError) -> int:
    """The HTTP status to answer with when ``exc`` happens before a stream starts."""
    for cls, status in _STATUSES:
        if isinstance(exc, cls):
            return status
    upstream = _upstream_status(exc)
    return upstream if upstream in _KEPT_STATUSES else 502


def _upstream_type_and_code(status: int) -> tuple[str, str]:
    if status == 429:
        return "rate_limit_error", "rate_limit_exceeded"
    if status in _INVALID_REQUEST_STATUSES:
        return "invalid_request_error", f"upstream_{status}"
    return "upstream_error", f"upstream_{status}"


def _type_and_code(exc: LLMError) -> tuple[str, str | None]:
    if isinstance(exc, ModelNotFound):
        return "invalid_request_error", "model_not_found"
    if isinstance(exc, InvalidLLMRequest):
        return "invalid_request_error", None
    if isinstance(exc, UpstreamUnsupported):
        return "invalid_request_error", "unsupported_by_upstream"
    if isinstance(exc, GenerationCancelled):
        return "cancelled", "cancelled"
    if isinstance(exc, GenerationLost):
        return "producer_lost", "producer_lost"
    if isinstance(exc, UpstreamTimeout):
        return "upstream_error", "upstream_timeout"
    upstream = _upstream_status(exc)
    if upstream is not None:
        return _upstream_type_and_code(upstream)
    if isinstance(exc, UpstreamProtocolError):
        return "upstream_error", "upstream_protocol_error"
    if isinstance(exc, UpstreamConnectError):
        return "upstream_error", "upstream_connect_error"
    return "upstream_error", "upstream_error"


def error_payload(exc: LLMError) -> dict[str, Any]:
    """``{"error": {...}}`` describing ``exc`` (no stack, no upstream secrets)."""
    type_, code = _type_and_code(exc)
    param = exc.param if isinstance(exc, InvalidLLMRequest) else None
    if isinstance(exc, ModelNotFound):
        param = "model"
    return {"error": {"message": str(exc), "type": type_, "param": param, "code": code}}
