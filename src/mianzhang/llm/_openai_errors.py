"""Gateway errors in OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``.

The HTTP status chosen for an upstream failure describes the gateway's view: an upstream rate
limit stays 429 (the client should slow down), a bad request stays 400, an upstream's auth or
server failure is 502 (not the client's fault), a timeout 504.
"""

from __future__ import annotations

from typing import Any

from .._errors import (
    GenerationCancelled,
    InvalidLLMRequest,
    LLMError,
    ModelNotFound,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)

__all__ = ["error_payload", "error_status"]


def error_status(exc: LLMError) -> int:
    """The HTTP status to answer with when ``exc`` happens before a stream starts."""
    if isinstance(exc, ModelNotFound):
        return 404
    if isinstance(exc, InvalidLLMRequest):
        return 400
    if isinstance(exc, UpstreamTimeout):
        return 504
    if isinstance(exc, GenerationCancelled):
        return 499
    if isinstance(exc, UpstreamStatusError) and exc.status_code in (400, 404, 413, 422, 429):
        return exc.status_code
    return 502


def _type_and_code(exc: LLMError) -> tuple[str, str | None]:
    if isinstance(exc, ModelNotFound):
        return "invalid_request_error", "model_not_found"
    if isinstance(exc, InvalidLLMRequest):
        return "invalid_request_error", None
    if isinstance(exc, GenerationCancelled):
        return "cancelled", "cancelled"
    if isinstance(exc, UpstreamTimeout):
        return "upstream_error", "upstream_timeout"
    if isinstance(exc, UpstreamStatusError):
        if exc.status_code == 429:
            return "rate_limit_error", "rate_limit_exceeded"
        if exc.status_code in (400, 413, 422):
            return "invalid_request_error", f"upstream_{exc.status_code}"
        return "upstream_error", f"upstream_{exc.status_code}"
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
