"""HTTP routes of the LLM gateway (``mianzhang.llm``).

==========================================  ===================================================
``GET /v1/models``                          the configured models (a demo model says so)
``POST /v1/chat/completions``               OpenAI Chat Completions, ``stream`` true or false
``POST /v1/responses``                      OpenAI Responses API (``stream``, ``background``)
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
generation's home surface or ``?format=chat|responses|native``) and stop
(``POST /v1/streams/{id}/cancel``) it, on any instance sharing the log. The caller's token
budget is charged by the runner's ``on_end`` hook once the stream has ended, however it ended.

Bad input is a 4xx with an OpenAI error body before any stream starts; a failure after the
headers is an error event in the stream. ``stream: false`` chat completions run in the
request: a client that disconnects cancels the upstream request at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from ..._errors import LLMError, StreamNotFound
from ...llm import ChatCompletionCollector, error_payload, error_status
from ...llm._chat_format import CHAT
from ...llm._requests import ChatCompletionBody, GenerationBody, ResponsesBody, parse_body
from ...llm._responses_format import RESPONSES
from ...llm._responses_stored import final_response, stored_response
from ...llm._serve import surface_response
from ...llm._service import LLMService, PreparedStream
from ...log import EventLog, StreamState
from ...log.serve import StreamHost, requested_after

__all__ = ["TokenBudget", "llm_router"]

T = TypeVar("T")
B = TypeVar("B", ChatCompletionBody, GenerationBody, ResponsesBody)


def _error(exc: LLMError) -> JSONResponse:
    return JSONResponse(error_payload(exc), status_code=error_status(exc))


def _not_found(kind: str, ident: str) -> JSONResponse:
    body = {
        "message": f"{kind} {ident!r} not found",
        "type": "invalid_request_error",
        "param": None,
        "code": "not_found",
    }
    return JSONResponse({"error": body}, status_code=404)


async def _until_disconnect(request: Request, work: Awaitable[T]) -> T | None:
    """``await work``, cancelled (and ``None`` returned) if the client disconnects first."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, watcher):
            if not t.done():
                t.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)
    if task.cancelled():
        return None
    return task.result()


class TokenBudget(Protocol):
    """Per-caller LLM token limits (the server's rate limiter)."""

    async def check(self, request: Request) -> str:
        """Raise ``RateLimited`` if the caller has no tokens left; return its limit key."""
        ...

    async def charge(self, who: str, tokens: int) -> None:
        """Record tokens a generation of ``who`` used."""
        ...


Charge = Callable[[], Awaitable[None]]
Admitted = tuple[B, PreparedStream, Charge | None]


def _charger(
    budget: TokenBudget | None, who: str | None, prepared: PreparedStream
) -> Charge | None:
    """The hook charging ``who`` with the tokens ``prepared``'s generation used."""
    if budget is None or who is None:
        return None

    async def charge() -> None:
        await budget.charge(who, prepared.generation.usage.total_tokens)

    return charge


class _Routes:
    """The gateway's handlers, given the app's accessors (see :func:`llm_router`)."""

    def __init__(
        self,
        get_llm: Callable[[Request], LLMService],
        get_host: Callable[[Request], StreamHost],
        get_budget: Callable[[Request], TokenBudget] | None,
    ) -> None:
        self.get_llm = get_llm
        self.get_host = get_host
        self.get_budget = get_budget

    async def admit(
        self, request: Request, body_type: type[B], prepare: Callable[[B], PreparedStream]
    ) -> Admitted[B] | Response:
        """Parse the body, check the caller's token budget, prepare the generation; or the
        refusal to answer (4xx JSON, nothing started)."""
        try:
            body = parse_body(await request.body(), body_type)
        except LLMError as exc:
            return _error(exc)
        budget = self.get_budget(request) if self.get_budget is not None else None
        who = await budget.check(request) if budget is not None else None
        try:
            prepared = prepare(body)
        except LLMError as exc:
            return _error(exc)
        return body, prepared, _charger(budget, who, prepared)

    async def start(
        self,
        request: Request,
        prepared: PreparedStream,
        charge: Charge | None,
    ) -> StreamHost:
        host = self.get_host(request)
        await self.get_llm(request).start(host, prepared, on_end=charge)
        # one loop turn: the producer sends the upstream request now, while this request's
        # response is still being set up (time to first token)
        await asyncio.sleep(0)
        return host

    async def models(self, request: Request) -> Response:
        """The configured models in OpenAI's list shape."""
        llm = self.get_llm(request)
        data = [entry.to_openai() for entry in llm.registry.models()]
        return JSONResponse({"object": "list", "data": data})

    async def chat_completions(self, request: Request) -> Response:
        """OpenAI Chat Completions (see the module docstring)."""
        admitted = await self.admit(request, ChatCompletionBody, self.get_llm(request).prepare_chat)
        if isinstance(admitted, Response):
            return admitted
        body, prepared, charge = admitted
        if not body.stream:
            return await self._complete(request, prepared, charge)
        host = await self.start(request, prepared, charge)
        return surface_response(host, prepared.stream_id, CHAT, None)

    async def _complete(
        self,
        request: Request,
        prepared: PreparedStream,
        charge: Charge | None,
    ) -> Response:
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
            result = await _until_disconnect(request, run())
        except LLMError as exc:
            return _error(exc)
        finally:
            if charge is not None:
                await charge()
        if result is None:  # the client is gone: nobody reads this
            return Response(status_code=499)
        return JSONResponse(result)

    async def generations(self, request: Request) -> Response:
        """Create a generation for the native event stream; follow ``stream_url``."""
        admitted = await self.admit(request, GenerationBody, self.get_llm(request).prepare_native)
        if isinstance(admitted, Response):
            return admitted
        _, prepared, charge = admitted
        await self.start(request, prepared, charge)
        payload = {
            "stream_id": prepared.stream_id,
            "stream_url": f"/v1/streams/{prepared.stream_id}",
            "model": prepared.generation.model,
            "background": prepared.background,
        }
        return JSONResponse(payload, status_code=201, headers={"X-Stream-Id": prepared.stream_id})

    async def create_response(self, request: Request) -> Response:
        """OpenAI Responses API: stream, background, or wait for the result."""
        llm = self.get_llm(request)
        admitted = await self.admit(request, ResponsesBody, llm.prepare_responses)
        if isinstance(admitted, Response):
            return admitted
        body, prepared, charge = admitted
        host = await self.start(request, prepared, charge)
        stream_id = prepared.stream_id
        headers = {"X-Stream-Id": stream_id}
        if body.stream:
            return surface_response(host, stream_id, RESPONSES, None)
        if body.background:
            return JSONResponse(await stored_response(host.log, stream_id), headers=headers)
        result = await _until_disconnect(request, final_response(host.log, stream_id))
        if result is None:
            return Response(status_code=499)
        return JSONResponse(result, headers=headers)

    async def get_response(
        self,
        request: Request,
        response_id: str,
        stream: bool = False,
        starting_after: int | None = None,
    ) -> Response:
        """The response object, or (``stream=true``) its events after ``starting_after``."""
        host = self.get_host(request)
        info = await host.log.info(response_id)
        if info is None or info.meta.get("kind") != "llm.responses":
            return _not_found("response", response_id)
        if not stream:
            return JSONResponse(await stored_response(host.log, response_id))
        # a reconnecting EventSource's Last-Event-ID wins; else sequence_number N is the N-th
        # event of the surface: skip N + 1 of them (by replay)
        after = requested_after(request)
        skip = starting_after + 1 if starting_after is not None and starting_after >= 0 else 0
        return surface_response(host, response_id, RESPONSES, after, skip=0 if after else skip)

    async def cancel_response(self, request: Request, response_id: str) -> Response:
        """Stop a response (any instance); answers the response object as it ended."""
        host = self.get_host(request)
        info = await host.log.info(response_id)
        if info is None or info.meta.get("kind") != "llm.responses":
            return _not_found("response", response_id)
        if info.state is StreamState.OPEN:
            await host.cancel(response_id)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10.0):
                    await _wait_closed(host.log, response_id)
        return JSONResponse(await stored_response(host.log, response_id))


def llm_router(
    get_llm: Callable[[Request], LLMService],
    get_host: Callable[[Request], StreamHost],
    *,
    get_budget: Callable[[Request], TokenBudget] | None = None,
) -> APIRouter:
    """The gateway's routes; ``get_llm(request)`` / ``get_host(request)`` return the app's
    :class:`LLMService` and its :class:`StreamHost`; ``get_budget(request)`` its token limits
    (checked before a generation starts, charged with the usage when it ends)."""
    routes = _Routes(get_llm, get_host, get_budget)
    router = APIRouter(prefix="/v1", tags=["llm"])
    add = router.add_api_route
    add("/models", routes.models, methods=["GET"], name="llm:models")
    add("/chat/completions", routes.chat_completions, methods=["POST"], name="llm:chat")
    add(
        "/llm/generations",
        routes.generations,
        methods=["POST"],
        name="llm:generations",
        status_code=201,
    )
    add("/responses", routes.create_response, methods=["POST"], name="llm:responses")
    add("/responses/{response_id}", routes.get_response, methods=["GET"], name="llm:response")
    add(
        "/responses/{response_id}/cancel",
        routes.cancel_response,
        methods=["POST"],
        name="llm:response-cancel",
    )
    return router


async def _wait_closed(log: EventLog, stream: str) -> None:
    """Return once ``stream`` is no longer open (a follower ends when the stream does)."""
    info = await log.info(stream)
    if info is None or info.state is not StreamState.OPEN:
        return
    with contextlib.suppress(StreamNotFound):
        async for _ in log.follow(stream, after=info.last_id):
            pass
