# ruff: noqa: E402  (sse_starlette is imported after install() on purpose)
"""One app written against sse-starlette 3.7.1, for ``tests/compat/test_sse_starlette_parity.py``.

``PARITY_LIB=real`` serves it with sse-starlette itself; ``PARITY_LIB=compat`` calls
``mianzhang.compat.install()`` first, so the very same imports resolve to mianzhang's drop-in.
The code below only ever imports ``sse_starlette``.

Each generator records what happened to it under its ``key`` (``GET /_state?key=``): whether
it started, how many times its ``finally`` ran, whether its cleanup was cancelled, the
messages ``client_close_handler_callable`` got, whether the background task ran.

Routes (query parameters in brackets):

* ``/events`` [sep, ping]: every kind of item, then the end.
* ``/idle`` [key, ping, factory, close_handler]: one event, then nothing until the client
  goes (``factory=1``: ``ping_message_factory`` gives ``: custom ping``).
* ``/pause`` [ping]: ``a``, 1.5 s of silence, ``b``, the end.
* ``/busy`` [ping]: ten events 250 ms apart, the end.
* ``/head`` [key]: like ``/idle``, with a background task.
* ``/custom`` [key]: status 201, custom headers, a background task.
* ``/farewell`` [key]: waits for its ``shutdown_event`` (grace 2 s), says ``bye``, ends.
* ``/big`` [key, send_timeout, cleanup_timeout, hang]: 256 KiB events as fast as they are
  taken (``hang=1``: the ``finally`` waits an hour unless cancelled).
* ``/sender``: a memory channel filled by ``data_sender_callable``.
* ``/sync``: a sync generator. ``/fail-late`` [raise_errors]: one event, then an exception.
* ``/gz/events``: ``/events`` behind Starlette's ``GZipMiddleware``.
* ``POST /exit``, ``POST /reset``: ``AppStatus.should_exit = True`` / ``False``.
* WebSocket ``/ws``: the response given a WebSocket scope (three events).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Any

import anyio

import mianzhang.compat

LIB = os.environ.get("PARITY_LIB", "compat")
if LIB == "compat":
    mianzhang.compat.install()

from sse_starlette import EventSourceResponse, JSONServerSentEvent, ServerSentEvent
from sse_starlette.sse import AppStatus
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

STATE: defaultdict[str, dict[str, Any]] = defaultdict(
    lambda: {"started": False, "cleanups": 0, "cancelled": False, "closed": [], "background": 0}
)


def items() -> list[Any]:
    return [
        "plain",
        "multi\nline\r\nmixed\rends",
        "",
        {"data": "d", "event": "e", "id": "7", "retry": 1500},
        {"comment": "a comment"},
        ServerSentEvent("obj", event="o", id="i", comment="c1\nc2"),
        JSONServerSentEvent({"text": "héllo", "n": [1, 2.5, None]}),
        b"data: pre-encoded\n\n",
        12.5,
    ]


def number(request: Request, name: str, default: float | None = None) -> float | None:
    value = request.query_params.get(name)
    return default if value is None else float(value)


def sep_of(request: Request) -> str | None:
    return {"lf": "\n", "cr": "\r", "crlf": "\r\n"}.get(request.query_params.get("sep", ""))


async def idle(key: str) -> AsyncIterator[str]:
    STATE[key]["started"] = True
    try:
        yield "hello"
        await asyncio.Event().wait()
    finally:
        STATE[key]["cleanups"] += 1


def record_background(key: str) -> None:
    STATE[key]["background"] += 1


async def events(request: Request) -> Response:
    return EventSourceResponse(items(), ping=number(request, "ping"), sep=sep_of(request))


async def idle_stream(request: Request) -> Response:
    key = request.query_params["key"]

    async def on_close(message: Message) -> None:
        STATE[key]["closed"].append(dict(message))

    factory = (
        (lambda: ServerSentEvent(comment="custom ping"))
        if "factory" in request.query_params
        else None
    )
    return EventSourceResponse(
        idle(key),
        ping=number(request, "ping", 600),
        ping_message_factory=factory,
        client_close_handler_callable=on_close if "close_handler" in request.query_params else None,
    )


async def pause(request: Request) -> Response:
    async def gen() -> AsyncIterator[str]:
        yield "a"
        await asyncio.sleep(1.5)
        yield "b"

    return EventSourceResponse(gen(), ping=number(request, "ping"))


async def busy(request: Request) -> Response:
    async def gen() -> AsyncIterator[str]:
        for i in range(10):
            yield f"tick {i}"
            await asyncio.sleep(0.25)

    return EventSourceResponse(gen(), ping=number(request, "ping"))


async def head(request: Request) -> Response:
    key = request.query_params["key"]
    return EventSourceResponse(idle(key), background=BackgroundTask(record_background, key))


async def custom(request: Request) -> Response:
    key = request.query_params["key"]
    return EventSourceResponse(
        ["one", "two"],
        status_code=201,
        headers={"X-Custom": "1", "Cache-Control": "public"},
        media_type="text/event-stream",
        background=BackgroundTask(record_background, key),
    )


async def farewell(request: Request) -> Response:
    key = request.query_params["key"]
    shutdown = anyio.Event()

    async def gen() -> AsyncIterator[str]:
        yield "hello"
        await shutdown.wait()
        yield "bye"
        STATE[key]["cleanups"] += 1

    return EventSourceResponse(gen(), shutdown_event=shutdown, shutdown_grace_period=2.0)


async def big_events(key: str, hang: bool) -> AsyncIterator[bytes]:
    pad = b"x" * (256 * 1024)
    try:
        i = 0
        while True:
            i += 1
            yield b"data: %d " % i + pad + b"\n\n"
    finally:
        STATE[key]["cleanups"] += 1
        if hang:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                STATE[key]["cancelled"] = True
                raise


async def big(request: Request) -> Response:
    key = request.query_params["key"]
    kwargs: dict[str, Any] = {"send_timeout": number(request, "send_timeout"), "ping": 0}
    if "cleanup_timeout" in request.query_params:
        kwargs["cleanup_timeout"] = number(request, "cleanup_timeout")
    return EventSourceResponse(big_events(key, "hang" in request.query_params), **kwargs)


async def sender(request: Request) -> Response:
    send_channel, receive_channel = anyio.create_memory_object_stream[dict[str, str]](10)

    async def produce(channel: Any) -> None:
        async with channel:
            for i in range(5):
                await channel.send({"data": f"item {i}", "id": str(i)})

    return EventSourceResponse(receive_channel, data_sender_callable=partial(produce, send_channel))


async def sync(request: Request) -> Response:
    def gen() -> Iterator[dict[str, str]]:
        for i in range(3):
            time.sleep(0.01)
            yield {"data": f"sync {i}"}

    return EventSourceResponse(gen())


async def fail_late(request: Request) -> Response:
    async def gen() -> AsyncIterator[str]:
        yield "first"
        raise RuntimeError("boom after the headers")

    kwargs = {"raise_errors": True} if "raise_errors" in request.query_params else {}
    return EventSourceResponse(gen(), **kwargs)


async def exit_(request: Request) -> Response:
    AppStatus.should_exit = True
    return JSONResponse({"should_exit": AppStatus.should_exit})


async def reset(request: Request) -> Response:
    AppStatus.should_exit = False
    return JSONResponse({"should_exit": AppStatus.should_exit})


async def state(request: Request) -> Response:
    return JSONResponse(STATE[request.query_params["key"]])


async def which(request: Request) -> Response:
    import sse_starlette

    return JSONResponse({"lib": LIB, "module": sse_starlette.__name__})


gzipped = GZipMiddleware(Starlette(routes=[Route("/events", events)]), minimum_size=10)

http_app = Starlette(
    routes=[
        Route("/events", events),
        Route("/idle", idle_stream),
        Route("/pause", pause),
        Route("/busy", busy),
        Route("/head", head, methods=["GET", "HEAD"]),
        Route("/custom", custom),
        Route("/farewell", farewell),
        Route("/big", big),
        Route("/sender", sender),
        Route("/sync", sync),
        Route("/fail-late", fail_late),
        Route("/exit", exit_, methods=["POST"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/_state", state),
        Route("/_which", which),
        Mount("/gz", app=gzipped),
    ]
)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The Starlette app, and the SSE response itself for a WebSocket on ``/ws``."""
    if scope["type"] == "websocket" and scope["path"] == "/ws":
        response = EventSourceResponse([{"data": f"e{i}"} for i in range(3)], ping=0)
        await response(scope, receive, send)
        return
    await http_app(scope, receive, send)
