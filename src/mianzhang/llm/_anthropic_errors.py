"""Errors in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``.

One renderer for the Anthropic surface, before a stream starts (:func:`error_response`:
status and body) and inside one (:func:`error_event_payload`: the same body, sent as
``event: error`` on a 200 response). The status and error type are looked up in
:mod:`._anthropic_tables`:

=============================================  ======  ======================
exception                                      status  ``error.type``
=============================================  ======  ======================
``InvalidLLMRequest`` (validation)             400     invalid_request_error
``Unauthorized``                               401     authentication_error
``Forbidden``                                  403     permission_error
``ModelNotFound``, ``StreamNotFound``          404     not_found_error
``RequestTooLarge``, ``UploadTooLarge``        413     request_too_large
other ``RequestError`` (``InvalidRequest``,    its own (400, 404, 405, 408, 409, 415), type
``NotFound``, ``MethodNotAllowed``, ...)       per ``ERROR_TYPES``
``RateLimited``                                429     rate_limit_error
``GenerationCancelled``                        499     cancelled_error
                                                       (``shutdown``: 529 overloaded_error)
``Draining``, ``BackendUnavailable``           529     overloaded_error
``UpstreamTimeout``                            504     timeout_error
``UpstreamStatusError`` (upstream status s)    see ``UPSTREAM_STATUSES`` (else 502)
``UpstreamStreamError`` (upstream error type)  as its status; the type kept if the status is
``UpstreamUnsupported``                        400     invalid_request_error
other ``UpstreamError``                        502     api_error
anything else                                  500     api_error (no details)
=============================================  ======  ======================

The message is the exception's own text (no stack, no upstream secrets); an unexpected
exception's text is not shown at all.
"""

from __future__ import annotations

from typing import Any, Final

from .._errors import (
    BackendUnavailable,
    Draining,
    Forbidden,
    GenerationCancelled,
    InvalidLLMRequest,
    MianzhangError,
    ModelNotFound,
    RateLimited,
    RequestError,
    RequestTooLarge,
    StreamNotFound,
    Unauthorized,
    UploadTooLarge,
    UpstreamError,
    UpstreamStatusError,
    UpstreamStreamError,
    UpstreamTimeout,
    UpstreamUnsupported,
)
from ._anthropic_tables import CANCEL_ERRORS, error_type_for_status, upstream_status_for

__all__ = ["error_body", "error_event_payload", "error_response", "error_status_and_type"]

_STATUSES: Final[tuple[tuple[type[BaseException], int], ...]] = (
    (InvalidLLMRequest, 400),
    (UpstreamUnsupported, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (ModelNotFound, 404),
    (StreamNotFound, 404),
    (RequestTooLarge, 413),
    (UploadTooLarge, 413),
    (RateLimited, 429),
    (Draining, 529),
    (BackendUnavailable, 529),
    (UpstreamTimeout, 504),
)
"""Exception class -> status, first match wins (the classes that need no inspection)."""


def error_status_and_type(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and Anthropic error ``type`` describing ``exc``."""
    for cls, status in _STATUSES:
        if isinstance(exc, cls):
            return status, error_type_for_status(status)
    if isinstance(exc, RequestError):
        return exc.status_code, error_type_for_status(exc.status_code)
    if isinstance(exc, GenerationCancelled):
        status = CANCEL_ERRORS.get(exc.reason, 499)
        return status, error_type_for_status(status)
    if isinstance(exc, UpstreamStreamError):
        code = exc.status_code or 500
        status = upstream_status_for(code)
        # the upstream's own type when its status is kept (an upstream's authentication_error
        # is the gateway's problem: 502 api_error, not the caller's credentials)
        return status, exc.error_type if status == code else error_type_for_status(status)
    if isinstance(exc, UpstreamStatusError):
        status = upstream_status_for(exc.status_code or 502)
        return status, error_type_for_status(status)
    if isinstance(exc, UpstreamError):
        return 502, "api_error"
    return 500, "api_error"


def _message(exc: BaseException) -> str:
    if isinstance(exc, MianzhangError):
        return str(exc) or type(exc).__name__
    return "internal error"


def error_body(error_type: str, message: str) -> dict[str, Any]:
    """Anthropic's error body for ``error_type`` and ``message``."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def error_response(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """``(status, body)`` answering ``exc`` before a stream starts."""
    status, error_type = error_status_and_type(exc)
    return status, error_body(error_type, _message(exc))


def error_event_payload(exc: BaseException) -> dict[str, Any]:
    """The data of the ``error`` event reporting ``exc`` inside a stream (same body)."""
    return error_response(exc)[1]
