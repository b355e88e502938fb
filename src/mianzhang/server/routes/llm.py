"""HTTP routes of the LLM gateway (``mianzhang.llm``).

==========================================  ===================================================
``GET /v1/models``                          the configured models (a demo model says so)
``POST /v1/chat/completions``               OpenAI Chat Completions, ``stream`` true or false
``POST /v1/responses``                      OpenAI Responses API (``stream``, ``background``)
``GET /v1/responses/{id}``                  the response object, or its events with
                                            ``?stream=true&starting_after=N``
``POST /v1/responses/{id}/cancel``          stop a response; answers the response object
``POST /v1/llm/generations``                a generation for the native UI stream (JSON:
                                            ``stream_id``, ``stream_url``)
==========================================  ===================================================

Every streamed generation is a producer of an event-log stream (its id is the completion /
response id, sent as ``X-Stream-Id``), run by the app's producer registry: by default it is
cancelled once no reader has been connected for ``llm.grace_period`` seconds (tokens are
money), ``"background": true`` keeps it running to the end. The generic stream routes resume
(``GET /v1/streams/{id}`` with ``Last-Event-ID``, same chunk format, ``[DONE]`` last) and stop
(``POST /v1/streams/{id}/cancel``) it, on any instance sharing the log.

Bad input is a 4xx with an OpenAI error body before any stream starts; a failure after the
headers is an error event in the stream. ``stream: false`` chat completions run in the
request: a client that disconnects cancels the upstream request at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from ..._errors import LLMError, StreamNotFound
from ...llm import ChatCompletionCollector, ResponseSnapshot, error_payload, error_status
from ...llm._requests import ChatCompletionBody, GenerationBody, ResponsesBody, parse_body
from ...llm._service import LLMService, PreparedStream
from ...log import EventLog, LogEntry, LogEvent, Reset, StreamState, format_id

__all__ = ["StreamHost", "TokenBudget", "llm_router"]

T = TypeVar("T")
B = TypeVar("B", ChatCompletionBody, GenerationBody, ResponsesBody)


class StreamHost(Protocol):
    """What the routes need from the app's event-log layer (``mianzhang.log.serve``)."""

    log: EventLog

    def sse(
        self, request: Request, stream: str, after: str | None, headers: dict[str, str]
    ) -> Response:
        """The SSE response following ``stream`` after ``after`` (``None``: from the start)."""
        ...

    async def start(
        self, stream: str, producer: AsyncIterator[LogEntry], *, background: bool
    ) -> None:
        """Run ``producer`` as the owner of ``stream`` (appending its entries, closing the
        stream at its end) under the ``background`` or ``cancel_when_abandoned`` policy."""
        ...

    async def cancel(self, stream: str) -> bool:
        """Stop ``stream``'s producer, on whichever instance runs it."""
        ...


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


async def _charged(
    producer: AsyncIterator[LogEntry],
    prepared: PreparedStream,
    budget: TokenBudget,
    who: str,
) -> AsyncIterator[LogEntry]:
    """``producer``'s entries; when it ends, however, its tokens are charged to ``who``."""
    try:
        async with contextlib.aclosing(producer) as entries:  # type: ignore[type-var]
            async for entry in entries:
                yield entry
    finally:
        usage = prepared.generation.usage
        await asyncio.shield(budget.charge(who, usage.total_tokens))


def llm_router(
    get_llm: Callable[[Request], LLMService],
    get_host: Callable[[Request], StreamHost],
    *,
    get_budget: Callable[[Request], TokenBudget] | None = None,
) -> APIRouter:
    """The gateway's routes; ``get_llm(request)`` / ``get_host(request)`` return the app's
    :class:`LLMService` and its :class:`StreamHost`; ``get_budget(request)`` its token limits
    (checked before a generation starts, charged with the usage when it ends)."""
    router = APIRouter(prefix="/v1", tags=["llm"])

    async def check_budget(request: Request) -> str | None:
        if get_budget is None:
            return None
        return await get_budget(request).check(request)

    async def admit(
        request: Request, body_type: type[B], prepare: Callable[[B], PreparedStream]
    ) -> tuple[B, PreparedStream, str | None] | Response:
        """Parse the body, check the caller's token budget, prepare the generation; or the
        refusal to answer (4xx JSON, nothing started)."""
        try:
            body = parse_body(await request.body(), body_type)
        except LLMError as exc:
            return _error(exc)
        who = await check_budget(request)
        try:
            prepared = prepare(body)
        except LLMError as exc:
            return _error(exc)
        return body, prepared, who

    async def start(request: Request, prepared: PreparedStream, who: str | None) -> StreamHost:
        host = get_host(request)
        await get_llm(request).create_stream(host.log, prepared)
        producer = LLMService.producer(host.log, prepared)
        if get_budget is not None and who is not None:
            producer = _charged(producer, prepared, get_budget(request), who)
        await host.start(prepared.stream_id, producer, background=prepared.background)
        # one loop turn: the producer sends the upstream request now, while this request's
        # response is still being set up (time to first token)
        await asyncio.sleep(0)
        return host

    @router.get("/models", name="llm:models")
    async def models(request: Request) -> Response:
        """The configured models in OpenAI's list shape."""
        llm = get_llm(request)
        data = [entry.to_openai() for entry in llm.registry.models()]
        return JSONResponse({"object": "list", "data": data})

    @router.post("/chat/completions", name="llm:chat")
    async def chat_completions(request: Request) -> Response:
        """OpenAI Chat Completions (see the module docstring)."""
        admitted = await admit(request, ChatCompletionBody, get_llm(request).prepare_chat)
        if isinstance(admitted, Response):
            return admitted
        body, prepared, who = admitted
        if not body.stream:
            return await _complete(request, prepared, who)
        host = await start(request, prepared, who)
        headers = {"X-Stream-Id": prepared.stream_id}
        return host.sse(request, prepared.stream_id, None, headers)

    async def _complete(request: Request, prepared: PreparedStream, who: str | None) -> Response:
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
            if get_budget is not None and who is not None:
                await get_budget(request).charge(who, generation.usage.total_tokens)
        if result is None:  # the client is gone: nobody reads this
            return Response(status_code=499)
        return JSONResponse(result)

    @router.post("/llm/generations", name="llm:generations", status_code=201)
    async def generations(request: Request) -> Response:
        """Create a generation for the native event stream; follow ``stream_url``."""
        admitted = await admit(request, GenerationBody, get_llm(request).prepare_native)
        if isinstance(admitted, Response):
            return admitted
        _, prepared, who = admitted
        await start(request, prepared, who)
        stream_url = f"/v1/streams/{prepared.stream_id}"
        payload = {
            "stream_id": prepared.stream_id,
            "stream_url": stream_url,
            "model": prepared.generation.model,
            "background": prepared.background,
        }
        return JSONResponse(payload, status_code=201, headers={"X-Stream-Id": prepared.stream_id})

    @router.post("/responses", name="llm:responses")
    async def create_response(request: Request) -> Response:
        """OpenAI Responses API: stream, background, or wait for the result."""
        admitted = await admit(request, ResponsesBody, get_llm(request).prepare_responses)
        if isinstance(admitted, Response):
            return admitted
        body, prepared, who = admitted
        host = await start(request, prepared, who)
        headers = {"X-Stream-Id": prepared.stream_id}
        if body.stream:
            return host.sse(request, prepared.stream_id, None, headers)
        if body.background:
            snapshot = await _snapshot(host.log, prepared.stream_id, wait_for_first=True)
            return JSONResponse(snapshot, headers=headers)
        result = await _until_disconnect(request, _wait_final(host.log, prepared.stream_id))
        if result is None:
            return Response(status_code=499)
        return JSONResponse(result, headers=headers)

    @router.get("/responses/{response_id}", name="llm:response")
    async def get_response(
        request: Request, response_id: str, stream: bool = False, starting_after: int | None = None
    ) -> Response:
        """The response object, or (``stream=true``) its events after ``starting_after``."""
        host = get_host(request)
        info = await host.log.info(response_id)
        if info is None or info.meta.get("kind") != "llm.responses":
            return _not_found("response", response_id)
        if not stream:
            return JSONResponse(await _snapshot(host.log, response_id))
        after = None
        if starting_after is not None and starting_after >= 0:
            # sequence_number N is the log's event N + 1
            after = format_id(info.epoch, starting_after + 1)
        return host.sse(request, response_id, after, {"X-Stream-Id": response_id})

    @router.post("/responses/{response_id}/cancel", name="llm:response-cancel")
    async def cancel_response(request: Request, response_id: str) -> Response:
        """Stop a response (any instance); answers the response object as it ended."""
        host = get_host(request)
        info = await host.log.info(response_id)
        if info is None or info.meta.get("kind") != "llm.responses":
            return _not_found("response", response_id)
        if info.state is StreamState.OPEN:
            await host.cancel(response_id)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10.0):
                    await _wait_closed(host.log, response_id)
        return JSONResponse(await _snapshot(host.log, response_id))

    return router


async def _read_all(log: EventLog, stream: str) -> list[LogEvent]:
    events: list[LogEvent] = []
    after: str | None = None
    while True:
        reset, batch = await log.read(stream, after, limit=1000)
        if reset is not None and after is not None:
            break
        events.extend(batch)
        if len(batch) < 1000:
            return events
        after = batch[-1].id
    return events


async def _snapshot(
    log: EventLog, stream: str, *, wait_for_first: bool = False
) -> dict[str, Any] | None:
    snapshot = ResponseSnapshot()
    for event in await _read_all(log, stream):
        snapshot.apply(event.data)
    if snapshot.result() is None and wait_for_first:
        # the producer writes response.created as its first event: follow until it is there
        async with asyncio.timeout(10):
            async for item in log.follow(stream):
                if isinstance(item, Reset):
                    continue
                snapshot.apply(item.data)
                if snapshot.result() is not None:
                    break
    return snapshot.result()


async def _wait_final(log: EventLog, stream: str) -> dict[str, Any] | None:
    """Follow ``stream`` (counting as a reader) until it ends; the final response object."""
    snapshot = ResponseSnapshot()
    try:
        async for item in log.follow(stream):
            if not isinstance(item, Reset):
                snapshot.apply(item.data)
    except StreamNotFound:
        return None
    return snapshot.result()


async def _wait_closed(log: EventLog, stream: str) -> None:
    """Return once ``stream`` is no longer open (a follower ends when the stream does)."""
    info = await log.info(stream)
    if info is None or info.state is not StreamState.OPEN:
        return
    with contextlib.suppress(StreamNotFound):
        async for _ in log.follow(stream, after=info.last_id):
            pass
