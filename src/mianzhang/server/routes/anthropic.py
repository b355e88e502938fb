"""HTTP routes of the LLM gateway's Anthropic Messages API: ``anthropic_router``.

==========================================  ===================================================
``POST /v1/messages``                       a message, streamed (``"stream": true``: Messages
                                            API events) or not (the ``Message`` object)
``POST /v1/messages/count_tokens``          ``{"input_tokens": n}`` by the gateway's estimate
==========================================  ===================================================

Any configured model serves it, whatever its provider (OpenAI-compatible, Anthropic, local,
scripted, demo): the request is validated as Anthropic's API validates it and converted to the
gateway's request (``mianzhang.llm._anthropic_requests`` / ``_anthropic_convert``). The
generation is a log stream like every other (``llm.py``'s docstring): its id is the message
id (``msg_…``, also sent as ``X-Stream-Id``), so a dropped stream resumes with
``GET /v1/streams/{id}`` (its home surface is ``anthropic``; ``Last-Event-ID``), stops with
``POST /v1/streams/{id}/cancel``, and is counted in the metrics and the caller's token budget.
``stream: false`` follows the same log stream to its end and answers the message collected
from the same wire events a stream carries (``AnthropicMessageCollector``).

Headers: ``x-api-key`` is taken as the API key wherever ``Authorization: Bearer`` is (the
Anthropic SDKs send it); ``anthropic-version`` and ``anthropic-beta`` are accepted and not
acted on (one version of the API is served). Every error under ``/v1/messages``, including
auth, rate limits, unknown routes and wrong methods, is in Anthropic's shape
(``{"type": "error", "error": {"type", "message"}}``) with Anthropic's statuses
(``server/_errors``); a failure after the headers is an ``event: error`` in the stream.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from ...llm import PreparedStream
from ...llm._anthropic_requests import (
    MessagesBody,
    MessagesRequest,
    parse_count_tokens,
    parse_messages,
)
from ...llm._anthropic_surface import ANTHROPIC, AnthropicMessageCollector
from ...llm._collect import collect
from ...llm._serve import surface_response
from ...log.serve import StreamHost
from .._deps import LLM, Budget, Host
from .._errors import ErrorRoute
from ._generations import admit, client_gone, start, until_disconnect

__all__ = ["anthropic_router"]

anthropic_router = APIRouter(prefix="/v1/messages", tags=["anthropic"], route_class=ErrorRoute)


def _streamed(request: MessagesRequest) -> bool:
    return isinstance(request.body, MessagesBody) and request.body.stream


@anthropic_router.post("", name="anthropic:messages")
async def messages(request: Request, llm: LLM, host: Host, budget: Budget) -> Response:
    """Anthropic's Messages API (see the module docstring)."""
    admitted = await admit(request, budget, parse_messages, llm.prepare_messages)
    await start(llm, host, admitted)
    prepared = admitted.prepared
    if _streamed(admitted.body):
        return surface_response(host, prepared.stream_id, ANTHROPIC, None)
    return await _message(request, host, prepared)


async def _message(request: Request, host: StreamHost, prepared: PreparedStream) -> Response:
    """``stream: false``: the ``Message`` once the generation ended (its error otherwise)."""
    collector = AnthropicMessageCollector(prepared.context())

    async def run() -> dict[str, Any]:
        await collect(host.log, prepared.stream_id, collector.add)
        return collector.result()

    result = await until_disconnect(request, run())
    if result is None:
        return client_gone()
    return JSONResponse(result, headers={"X-Stream-Id": prepared.stream_id})


@anthropic_router.post("/count_tokens", name="anthropic:count-tokens")
async def count_tokens(request: Request, llm: LLM) -> Response:
    """The request's input tokens (404 for a model that is not configured)."""
    return JSONResponse(llm.count_tokens(parse_count_tokens(await request.body())))
