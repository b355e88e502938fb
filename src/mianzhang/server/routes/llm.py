"""HTTP routes of the LLM gateway's OpenAI API (``mianzhang.llm``): ``llm_router``.

==========================================  ===================================================
``GET /v1/models``                          the configured models (a demo model says so)
``GET /v1/models/{id}``                     one model (``client.models.retrieve``), or 404
``POST /v1/chat/completions``               OpenAI Chat Completions, ``stream`` true or false
``POST /v1/responses``                      OpenAI Responses API (``stream``, ``background``,
                                            function ``tools``)
``GET /v1/responses/{id}``                  the response object, or its events with
                                            ``?stream=true&starting_after=N`` (or after
                                            ``Last-Event-ID``)
``POST /v1/responses/{id}/cancel``          stop a response; answers the response object
``POST /v1/llm/generations``                a generation for the native UI stream (JSON:
                                            ``stream_id``, ``stream_url``)
==========================================  ===================================================

Every streamed generation is a producer of an event-log stream (its id is the completion /
response id, sent as ``X-Stream-Id``), run by the app's producer runner: by default it is
cancelled once no reader has been connected for ``llm.grace_period`` seconds (tokens are
money), ``"background": true`` keeps it running to the end. The stream holds the generation's
canonical events; each route reads it in its own surface (``mianzhang.llm``'s reader). The
generic stream routes resume (``GET /v1/streams/{id}`` with ``Last-Event-ID``, in the
generation's home surface or ``?format=chat|responses|native|anthropic``) and stop
(``POST /v1/streams/{id}/cancel``) it, on any instance sharing the log. The caller's token
budget is charged by the runner's ``on_end`` hook once the stream has ended, however it ended.

Bad input is a 4xx in OpenAI's error shape before any stream starts (raised, rendered by
``server/_errors``: so is every unknown ``/v1/`` route and wrong method); a failure after the
headers is an error event in the stream. ``stream: false`` chat completions run in the
request: a client that disconnects cancels the upstream request at once.

Services come from the ``_deps`` aliases (``LLM``, ``Host``, ``Budget``); auth is added where
the router is included (``create_app``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from ..._errors import NotFound
from ...llm import ChatCompletionCollector
from ...llm._chat_format import CHAT
from ...llm._requests import ChatCompletionBody, GenerationBody, ResponsesBody, parse_body
from ...llm._responses_format import RESPONSES
from ...llm._responses_stored import final_response, stored_response
from ...llm._serve import surface_response
from ...log import StreamState
from ...log.serve import StreamHost, requested_after
from .._chat_turns import wait_closed
from .._deps import LLM, Budget, Host
from .._errors import ErrorRoute
from ._generations import Admitted, admit, client_gone, start, until_disconnect

__all__ = ["llm_router"]

llm_router = APIRouter(prefix="/v1", tags=["llm"], route_class=ErrorRoute)


def _chat_body(raw: bytes) -> ChatCompletionBody:
    return parse_body(raw, ChatCompletionBody)


def _responses_body(raw: bytes) -> ResponsesBody:
    return parse_body(raw, ResponsesBody)


def _generation_body(raw: bytes) -> GenerationBody:
    return parse_body(raw, GenerationBody)


@llm_router.get("/models", name="llm:models")
async def models(llm: LLM) -> Response:
    """The configured models in OpenAI's list shape."""
    data = [entry.to_openai() for entry in llm.registry.models()]
    return JSONResponse({"object": "list", "data": data})


@llm_router.get("/models/{model:path}", name="llm:model")
async def model(model: str, llm: LLM) -> Response:
    """One configured model (``ModelNotFound``: 404 ``model_not_found``)."""
    return JSONResponse(llm.registry.get(model).to_openai())


@llm_router.post("/chat/completions", name="llm:chat")
async def chat_completions(request: Request, llm: LLM, host: Host, budget: Budget) -> Response:
    """OpenAI Chat Completions (see the module docstring)."""
    admitted = await admit(request, budget, _chat_body, llm.prepare_chat)
    if not admitted.body.stream:
        return await _complete(request, admitted)
    await start(llm, host, admitted)
    return surface_response(host, admitted.prepared.stream_id, CHAT, None)


async def _complete(request: Request, admitted: Admitted[ChatCompletionBody]) -> Response:
    """A chat completion with ``stream: false``, run in the request (not logged)."""
    prepared = admitted.prepared
    generation = prepared.generation
    collector = ChatCompletionCollector(
        completion_id=prepared.stream_id, model=generation.model, created=generation.created
    )

    async def run() -> dict[str, Any]:
        async for event in generation.events():
            collector.add(event)
        return collector.result()

    generation.cancel_reason = "client_disconnect"
    try:
        result = await until_disconnect(request, run())
    finally:
        if admitted.charge is not None:
            await admitted.charge()
    return client_gone() if result is None else JSONResponse(result)


@llm_router.post("/llm/generations", name="llm:generations", status_code=201)
async def generations(request: Request, llm: LLM, host: Host, budget: Budget) -> Response:
    """Create a generation for the native event stream; follow ``stream_url``."""
    admitted = await admit(request, budget, _generation_body, llm.prepare_native)
    await start(llm, host, admitted)
    prepared = admitted.prepared
    payload = {
        "stream_id": prepared.stream_id,
        "stream_url": f"/v1/streams/{prepared.stream_id}",
        "model": prepared.generation.model,
        "background": prepared.background,
    }
    return JSONResponse(payload, status_code=201, headers={"X-Stream-Id": prepared.stream_id})


@llm_router.post("/responses", name="llm:responses")
async def create_response(request: Request, llm: LLM, host: Host, budget: Budget) -> Response:
    """OpenAI Responses API: stream, background, or wait for the result."""
    admitted = await admit(request, budget, _responses_body, llm.prepare_responses)
    await start(llm, host, admitted)
    stream_id = admitted.prepared.stream_id
    headers = {"X-Stream-Id": stream_id}
    if admitted.body.stream:
        return surface_response(host, stream_id, RESPONSES, None)
    if admitted.body.background:
        return JSONResponse(await stored_response(host.log, stream_id), headers=headers)
    result = await until_disconnect(request, final_response(host.log, stream_id))
    return client_gone() if result is None else JSONResponse(result, headers=headers)


async def _response_stream(host: StreamHost, response_id: str) -> StreamState:
    """The state of response ``response_id``'s stream (404 if there is no such response)."""
    info = await host.log.info(response_id)
    if info is None or info.meta.get("kind") != "llm.responses":
        raise NotFound(f"response {response_id!r} not found")
    return info.state


@llm_router.get("/responses/{response_id}", name="llm:response")
async def get_response(
    request: Request,
    response_id: str,
    host: Host,
    stream: bool = False,
    starting_after: int | None = None,
) -> Response:
    """The response object, or (``stream=true``) its events after ``starting_after``."""
    await _response_stream(host, response_id)
    if not stream:
        return JSONResponse(await stored_response(host.log, response_id))
    # a reconnecting EventSource's Last-Event-ID wins; else sequence_number N is the N-th
    # event of the surface: skip N + 1 of them (by replay)
    after = requested_after(request)
    skip = starting_after + 1 if starting_after is not None and starting_after >= 0 else 0
    return surface_response(host, response_id, RESPONSES, after, skip=0 if after else skip)


@llm_router.post("/responses/{response_id}/cancel", name="llm:response-cancel")
async def cancel_response(response_id: str, host: Host) -> Response:
    """Stop a response (any instance); answers the response object as it ended."""
    if await _response_stream(host, response_id) is StreamState.OPEN:
        await host.cancel(response_id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10.0):
                await wait_closed(host.log, response_id)
    return JSONResponse(await stored_response(host.log, response_id))
