"""Errors before a stream starts become JSON: ``{"error": {"type", "message"}}`` and a 4xx/5xx.

The status is chosen from the exception's class; exceptions that are not mianzhang's own are a
500 whose message says nothing of the internals (the traceback goes to the server log).
"""

from __future__ import annotations

import logging
import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import _errors as e
from ..llm import error_payload, error_status

__all__ = ["error_response", "rate_limit_headers", "rate_limited", "status_of"]

logger = logging.getLogger("mianzhang.server")

_STATUS: tuple[tuple[type[e.MianzhangError], int], ...] = (
    (e.StreamNotFound, 404),
    (e.StreamClosedError, 409),
    (e.BackendUnavailable, 503),
    (e.Unauthorized, 401),
    (e.Forbidden, 403),
    (e.JobNotFound, 404),
    (e.UnknownJobType, 400),
    (e.InvalidJobInput, 400),
    (e.JobQueueFull, 503),
    (e.FileNotFound, 404),
    (e.UploadTooLarge, 413),
    (e.ChecksumMismatch, 460),
    (e.InvalidUpload, 400),
    (e.UploadStalled, 408),
    (e.UploadConflict, 409),
    (e.SSEError, 400),
    (e.RequestTimeout, 408),
    (e.RequestTooLarge, 413),
    (e.ChatConflict, 409),
    (e.ChatNotFound, 404),
    (e.Draining, 503),
)


def rate_limit_headers(exc: e.RateLimited) -> dict[str, str]:
    """``Retry-After`` and the IETF RateLimit headers (draft-ietf-httpapi-ratelimit-headers)."""
    policy = f'"{exc.policy}";q={exc.quota}' + (f";w={exc.window}" if exc.window else "")
    return {
        "Retry-After": str(exc.retry_after),
        "RateLimit-Policy": policy,
        "RateLimit": f'"{exc.policy}";r=0;t={exc.retry_after}',
    }


def rate_limited(exc: e.RateLimited) -> JSONResponse:
    body = {"error": {"type": "rate_limited", "message": str(exc), "policy": exc.policy}}
    return JSONResponse(body, status_code=429, headers=rate_limit_headers(exc))


def error_body(exc: e.MianzhangError) -> dict[str, object]:
    """``{"message", "type", "param", "code"}``: the OpenAI error shape, so SDK clients parse
    every refusal; ``type`` is the exception's class, ``code`` the same in snake_case."""
    name = type(exc).__name__
    code = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return {"message": str(exc), "type": name, "param": None, "code": code}


def status_of(exc: e.MianzhangError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


async def error_response(request: Request, exc: Exception) -> Response:
    """The app's exception handler for every exception."""
    if isinstance(exc, e.LLMError):
        return JSONResponse(error_payload(exc), status_code=error_status(exc))
    if isinstance(exc, e.RateLimited):
        return rate_limited(exc)
    if isinstance(exc, e.MianzhangError):
        status = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(exc, e.Draining):
            headers = {"Retry-After": "1", "Connection": "close"}
        elif status == 408:  # RFC 9110 §15.5.9: the rest of the request will not be read
            headers = {"Connection": "close"}
        body = {"error": error_body(exc)}
        if status >= 500:
            logger.error("request failed: %s", exc, exc_info=exc)
        return JSONResponse(body, status_code=status, headers=headers)
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    body = {"error": {"type": "internal_error", "message": "internal server error"}}
    return JSONResponse(body, status_code=500)
