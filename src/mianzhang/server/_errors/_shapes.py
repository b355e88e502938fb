"""The three error shapes, one renderer each: exception in, ``(status, body)`` out. No I/O.

==============  ==============================================  ================================
shape           body                                            used under
==============  ==============================================  ================================
``openai``      ``{"error": {"message", "type", "param",        ``/v1/`` (chat, responses,
                "code"}}``                                      models, unknown ``/v1/`` routes)
``anthropic``   ``{"type": "error", "error": {"type",           ``/v1/messages``
                "message"}}``
``mianzhang``   ``{"error": {"type", "message", ...}}``         every other route
==============  ==============================================  ================================

The LLM errors' OpenAI and Anthropic renderings live with the surfaces that also send them
inside a stream (``mianzhang.llm``: ``error_payload``, ``_anthropic_errors``); this module adds
every other error to them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ... import _errors as e
from ..._error_body import error_body
from ...llm import error_payload
from ...llm._anthropic_errors import error_response as anthropic_error_response
from ...llm._anthropic_tables import error_type_for_status
from ._status import extra_fields, message_of, status_of

__all__ = ["RENDERERS", "Renderer", "anthropic", "mianzhang", "openai"]

Renderer = Callable[[BaseException], tuple[int, dict[str, Any]]]


def mianzhang(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """mianzhang's own shape (``mianzhang._error_body``); ``type`` by status, except
    ``draining`` for an instance shutting down (retry on another one)."""
    status = status_of(exc)
    extra = extra_fields(exc)
    if isinstance(exc, e.Draining):
        extra["type"] = "draining"
    return status, error_body(status, message_of(exc), **extra)


_OPENAI_TYPES: Final[dict[int, str]] = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
}


def openai(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """OpenAI's shape. LLM errors as the gateway describes them in a stream too; others with
    ``type`` ``invalid_request_error`` (4xx), ``authentication_error`` (401),
    ``permission_error`` (403), ``rate_limit_error`` (429) or ``server_error`` (5xx), ``code``
    the ``type`` of mianzhang's shape (``not_found``, ``method_not_allowed``, ``draining``,
    ...; ``None`` for invalid input, whose ``param`` names the first invalid field), and the
    same extra fields (``problems``, ``policy``)."""
    if isinstance(exc, e.LLMError):
        return status_of(exc), error_payload(exc)
    status, own = mianzhang(exc)
    fields = dict(own["error"])
    code = fields.pop("type")
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    param = exc.param if isinstance(exc, e.InvalidRequest) else None
    if isinstance(exc, e.InvalidRequest):
        code = None
    body = {"message": fields.pop("message"), "type": kind, "param": param, "code": code}
    return status, {"error": {**body, **fields}}


def anthropic(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """Anthropic's shape and statuses (``mianzhang.llm._anthropic_errors``); an error it has
    no status of its own for keeps the status of mianzhang's other shapes."""
    status, body = anthropic_error_response(exc)
    if status == 500 and isinstance(exc, e.MianzhangError):
        status = status_of(exc)
        body["error"]["type"] = error_type_for_status(status)
    return status, body


RENDERERS: Final[dict[str, Renderer]] = {
    "openai": openai,
    "anthropic": anthropic,
    "mianzhang": mianzhang,
}
"""Every error shape by name."""
