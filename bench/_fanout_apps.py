"""The fan-out peers compared by ``bench/fanout.py``: one stream, N subscribers, one publisher.

uvicorn imports ``bench._fanout_apps:app``; the environment chooses the peer
(``MZ_FANOUT_PEER``) and the heartbeat (``MZ_FANOUT_PING`` seconds, default 15). Every app
serves the same two endpoints:

* ``GET /sub`` — subscribe (SSE). Each published message arrives as one event whose data is
  the published body; a heartbeat comment (``: ping``...) after ``MZ_FANOUT_PING`` silent
  seconds. The subscriber is registered before the response head is sent, so a subscriber
  that has its head misses nothing published afterwards.
* ``POST /pub`` — publish the request body (text) to every subscriber. The response (201)
  is sent first, then the fan-out runs in the same task, so a publisher's next (pipelined)
  request is not held up by the fan-out of the previous one.

The peers, each used its ordinary way:

* ``raw`` — a bare ASGI callable; the publish encodes the event once into one constant
  ``http.response.body`` message and awaits ``send`` of every subscriber in turn: one
  pre-encoded write per subscriber, nothing else. The floor of ASGI.
* ``streaming`` — Starlette ``StreamingResponse`` over a generator reading one
  ``asyncio.Queue`` per subscriber; the publish puts the same pre-encoded bytes into every
  queue.
* ``sse-starlette`` — ``sse_starlette.EventSourceResponse`` (``ping``, ``sep="\\n"``) over a
  generator reading one queue per subscriber and yielding ``ServerSentEvent(data)`` (encoded
  per subscriber, as that library is used).
* ``mz-queue`` — ``mianzhang.EventSourceResponse`` over a generator reading one queue per
  subscriber (pre-encoded bytes, like ``streaming``): mianzhang's response engine without the
  log, to tell the engine's cost from the log readers'.
* ``mz-log`` — a bare ``MemoryEventLog`` stream; every subscriber is a log reader served by
  ``mianzhang.log.serve.StreamHost.sse`` (``EventSourceResponse`` over ``log_events``); the
  publish is one ``append``. This is the log + response engine without the channel route,
  auth, middleware or FastAPI. ``GET /sub?history=1`` reads from the start of the stream
  instead of the tail.

mianzhang's real channel route (``mianzhang serve``) is not here: the bench runs the product
itself. The Starlette-based peers are mounted on a bare ``Starlette`` router.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

PING = float(os.environ.get("MZ_FANOUT_PING", "15"))
PEERS = ("raw", "streaming", "sse-starlette", "mz-queue", "mz-log")
PING_BYTES = b": ping\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
STREAM = "fanout"


def raw_app() -> Any:
    subscribers: set[Any] = set()
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ],
    }
    ping = {"type": "http.response.body", "body": PING_BYTES, "more_body": True}
    created = {"type": "http.response.start", "status": 201, "headers": []}
    end = {"type": "http.response.body", "body": b"", "more_body": False}

    async def read_body(receive: Any) -> bytes:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                return body

    async def subscribe(receive: Any, send: Any) -> None:
        subscribers.add(send)
        try:
            await send(start)
            while True:
                try:
                    async with asyncio.timeout(PING):
                        if (await receive())["type"] == "http.disconnect":
                            return
                except TimeoutError:
                    await send(ping)
        finally:
            subscribers.discard(send)

    async def publish(receive: Any, send: Any) -> None:
        body = await read_body(receive)
        await send(created)
        await send(end)
        message = {
            "type": "http.response.body",
            "body": b"data: " + body + b"\n\n",
            "more_body": True,
        }
        for subscriber in list(subscribers):
            try:
                await subscriber(message)
            except OSError:
                subscribers.discard(subscriber)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/sub":
            await subscribe(receive, send)
        elif scope["path"] == "/pub":
            await publish(receive, send)
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send(end)

    app.subscribers = subscribers  # type: ignore[attr-defined]  # for in-process harnesses
    return app


def _queue_app(make_response: Any, encode: Any) -> Any:
    """A Starlette app whose subscribers each read their own queue (``make_response(queue,
    forget)`` builds the response); the publish puts ``encode(body)`` into every queue."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    queues: set[asyncio.Queue[Any]] = set()

    async def subscribe(request: Request) -> Any:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        queues.add(queue)
        return make_response(queue, queues.discard)

    async def publish(request: Request) -> Response:
        item = encode(await request.body())
        for queue in queues:
            queue.put_nowait(item)
        return Response(status_code=201)

    return Starlette(routes=[Route("/sub", subscribe), Route("/pub", publish, methods=["POST"])])


def streaming_app() -> Any:
    from starlette.responses import StreamingResponse

    def response(queue: asyncio.Queue[bytes], forget: Any) -> Any:
        async def events() -> AsyncIterator[bytes]:
            try:
                while True:
                    try:
                        async with asyncio.timeout(PING):
                            item = await queue.get()
                    except TimeoutError:
                        yield PING_BYTES
                        continue
                    yield item
            finally:
                forget(queue)

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    return _queue_app(response, lambda body: b"data: " + body + b"\n\n")


def sse_starlette_app() -> Any:
    from sse_starlette import EventSourceResponse, ServerSentEvent

    def response(queue: asyncio.Queue[str], forget: Any) -> Any:
        async def events() -> AsyncIterator[Any]:
            try:
                while True:
                    yield ServerSentEvent(await queue.get(), sep="\n")
            finally:
                forget(queue)

        return EventSourceResponse(events(), ping=PING, sep="\n")

    return _queue_app(response, lambda body: body.decode())


def mz_queue_app() -> Any:
    from mianzhang import EventSourceResponse

    def response(queue: asyncio.Queue[bytes], forget: Any) -> Any:
        async def events() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield await queue.get()
            finally:
                forget(queue)

        return EventSourceResponse(events(), ping=PING)

    return _queue_app(response, lambda body: b"data: " + body + b"\n\n")


def mz_log_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from mianzhang.log import MemoryEventLog
    from mianzhang.log.serve import StreamHost

    log = MemoryEventLog(max_events=1000)
    host = StreamHost(log, ping=PING, send_timeout=30.0)

    async def subscribe(request: Request) -> Response:
        info = await log.create(STREAM)
        after = None if request.query_params.get("history") else info.last_id
        return host.sse(request, STREAM, after)

    async def publish(request: Request) -> Response:
        await log.append(STREAM, (await request.body()).decode())
        return Response(status_code=201)

    app = Starlette(routes=[Route("/sub", subscribe), Route("/pub", publish, methods=["POST"])])
    app.state.log = log  # for in-process harnesses (bench/fanout_trace.py)
    return app


def build(peer: str) -> Any:
    if peer == "raw":
        return raw_app()
    if peer == "streaming":
        return streaming_app()
    if peer == "sse-starlette":
        return sse_starlette_app()
    if peer == "mz-queue":
        return mz_queue_app()
    if peer == "mz-log":
        return mz_log_app()
    raise SystemExit(f"unknown MZ_FANOUT_PEER {peer!r}; one of {', '.join(PEERS)}")


app = build(os.environ.get("MZ_FANOUT_PEER", "raw"))
