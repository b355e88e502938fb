"""LLM errors as JSON and back, for the canonical log (``_canonical.py``).

:func:`error_json` keeps what rebuilds the same :class:`~mianzhang.LLMError` subclass with the
same attributes (``kind``, ``message`` and ``status``, ``retryable``, ``retry_after``,
``param``, ``model``, ``reason`` where they exist), so every surface describes a logged error
exactly as it would the live one. An upstream's response body is not kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._errors import (
    GenerationCancelled,
    GenerationLost,
    InvalidLLMRequest,
    LLMError,
    ModelNotFound,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)

__all__ = ["error_from_json", "error_json"]


# Upstream errors, most specific first: the kind names the class that is rebuilt.
_UPSTREAM_KINDS: tuple[tuple[type[UpstreamError], str], ...] = (
    (UpstreamStatusError, "upstream_status"),
    (UpstreamTimeout, "upstream_timeout"),
    (UpstreamProtocolError, "upstream_protocol"),
    (UpstreamConnectError, "upstream_connect"),
    (UpstreamError, "upstream"),
)


def error_json(exc: LLMError) -> dict[str, Any]:
    if isinstance(exc, GenerationCancelled):
        return {"kind": "cancelled", "message": str(exc), "reason": exc.reason}
    if isinstance(exc, GenerationLost):
        return {"kind": "producer_lost", "message": str(exc)}
    if isinstance(exc, ModelNotFound):
        return {"kind": "model_not_found", "message": str(exc), "model": exc.model}
    if isinstance(exc, InvalidLLMRequest):
        return {"kind": "invalid_request", "message": str(exc), "param": exc.param}
    if not isinstance(exc, UpstreamError):
        return {"kind": "llm", "message": str(exc)}
    kind = next(name for cls, name in _UPSTREAM_KINDS if isinstance(exc, cls))
    out: dict[str, Any] = {"kind": kind, "message": str(exc), "retryable": exc.retryable}
    if exc.status_code is not None:
        out["status"] = exc.status_code
    if exc.retry_after is not None:
        out["retry_after"] = exc.retry_after
    return out


def _upstream_error(kind: str, value: Mapping[str, Any]) -> LLMError:
    message = str(value.get("message", ""))
    retryable = bool(value.get("retryable", False))
    retry_after = value.get("retry_after")
    status: int | None = value.get("status")
    if kind == "upstream_status":
        code = int(status or 502)
        return UpstreamStatusError(code, message, retryable=retryable, retry_after=retry_after)
    simple: dict[str, Callable[[str], LLMError]] = {
        "upstream_timeout": UpstreamTimeout,
        "upstream_protocol": UpstreamProtocolError,
        "upstream_connect": UpstreamConnectError,
    }
    if kind in simple:
        return simple[kind](message)
    return UpstreamError(message, retryable=retryable, status_code=status, retry_after=retry_after)


def error_from_json(value: Mapping[str, Any]) -> LLMError:
    kind = value.get("kind")
    message = str(value.get("message", ""))
    if kind == "cancelled":
        return GenerationCancelled(str(value.get("reason", "cancelled")))
    if kind == "producer_lost":
        return GenerationLost(message)
    if kind == "model_not_found":
        return ModelNotFound(str(value.get("model", "")))
    if kind == "invalid_request":
        return InvalidLLMRequest(message, param=value.get("param"))
    if isinstance(kind, str) and kind.startswith("upstream"):
        return _upstream_error(kind, value)
    return LLMError(message)
