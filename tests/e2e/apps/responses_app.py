"""Apps for ``tests/e2e/test_responses_uvicorn.py``: mianzhang's streaming responses behind a
real uvicorn. ``app`` is Starlette with ``StreamSupervisor`` as its lifespan; ``fastapi_app``
serves the same routes from FastAPI.

Every generator records, under its ``key`` query parameter, how many items it produced and the
wall-clock time its ``finally`` ran, so a test can prove cleanup from outside the process:

* ``GET /stream?key=&mode=idle|busy|sync``: ``data: hello``, then nothing (idle), a tick every
  10 ms (busy), or ticks from a sync generator (sync).
* ``GET /big?key=&size=&send_timeout=``: events of ``size`` bytes, each freshly built, as fast
  as the response takes them (for a reader that stalls).
* ``GET /fail-early?kind=mianzhang|foreign``: the generator fails before its first item
  (mianzhang errors become a JSON 503 through an exception handler; others a plain 500).
* ``GET /fail-late?kind=``: one event, then the failure (in-band ``error`` event).
* ``GET /text-fail-late``: the same as plain text (body aborted).
* ``GET /_cleanups?key=``: ``{"count", "at", "produced"}``; ``GET /_stats``: the supervisor's
  counters.

With ``RESPONSES_APP_CLEANUP_FILE`` set, every cleanup also appends its key to that file, so a
test can count cleanups of a process that has exited.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mianzhang import (
    EventSourceResponse,
    MianzhangError,
    ServerSentEvent,
    StreamError,
    StreamSupervisor,
    TextStreamResponse,
)

supervisor = StreamSupervisor(retry_ms=(500, 1500))
fastapi_supervisor = StreamSupervisor(retry_ms=(500, 1500))

CLEANUPS: dict[str, list[float]] = defaultdict(list)
PRODUCED: dict[str, int] = defaultdict(int)
CLEANUP_FILE = os.environ.get("RESPONSES_APP_CLEANUP_FILE")


def record_cleanup(key: str) -> None:
    CLEANUPS[key].append(time.time())
    if CLEANUP_FILE:
        with open(CLEANUP_FILE, "a") as f:
            f.write(key + "\n")


async def idle_or_busy(key: str, busy: bool) -> AsyncIterator[ServerSentEvent]:
    try:
        PRODUCED[key] += 1
        yield ServerSentEvent("hello", id="0")
        if not busy:
            await asyncio.Event().wait()
        i = 0
        while True:
            await asyncio.sleep(0.01)
            i += 1
            PRODUCED[key] += 1
            yield ServerSentEvent(f"tick {i}", id=str(i))
    finally:
        record_cleanup(key)


def sync_ticks(key: str) -> Iterator[str]:
    try:
        PRODUCED[key] += 1
        yield "hello"
        while True:
            time.sleep(0.01)
            PRODUCED[key] += 1
            yield "tick"
    finally:
        record_cleanup(key)


async def big_events(key: str, size: int) -> AsyncIterator[bytes]:
    pad = b"x" * size
    try:
        i = 0
        while True:
            i += 1
            PRODUCED[key] += 1
            yield b"id: %d\ndata: " % i + pad + b"\n\n"  # a new object every time
    finally:
        record_cleanup(key)


def error_for(kind: str) -> Exception:
    if kind == "mianzhang":
        return StreamError("the upstream is gone")
    return RuntimeError("secret connection string postgres://u:p@db")


async def fail_early(kind: str) -> AsyncIterator[str]:
    raise error_for(kind)
    yield "never"  # pragma: no cover


async def fail_late(kind: str) -> AsyncIterator[str]:
    yield "first"
    raise error_for(kind)


def stream(request: Request) -> Response:
    key = request.query_params["key"]
    mode = request.query_params.get("mode", "idle")
    content = sync_ticks(key) if mode == "sync" else idle_or_busy(key, busy=mode == "busy")
    return EventSourceResponse(content, ping=0.5)


def big(request: Request) -> Response:
    key = request.query_params["key"]
    size = int(request.query_params.get("size", 256 * 1024))
    send_timeout = float(request.query_params.get("send_timeout", 1.0))
    return EventSourceResponse(big_events(key, size), send_timeout=send_timeout, ping=0)


def failing_early(request: Request) -> Response:
    return EventSourceResponse(fail_early(request.query_params.get("kind", "foreign")))


def failing_late(request: Request) -> Response:
    return EventSourceResponse(fail_late(request.query_params.get("kind", "foreign")))


def text_failing_late(request: Request) -> Response:
    return TextStreamResponse(fail_late("foreign"))


def cleanups(request: Request) -> Response:
    key = request.query_params["key"]
    at = CLEANUPS.get(key, [])
    return JSONResponse({"count": len(at), "at": at, "produced": PRODUCED.get(key, 0)})


def stats_of(which: StreamSupervisor) -> Response:
    return JSONResponse(dataclasses.asdict(which.stats))


async def mianzhang_error(request: Request, exc: Exception) -> Response:
    body = {"error": {"type": type(exc).__name__, "message": str(exc)}}
    return JSONResponse(body, status_code=503)


ROUTES = [
    Route("/stream", stream),
    Route("/big", big),
    Route("/fail-early", failing_early),
    Route("/fail-late", failing_late),
    Route("/text-fail-late", text_failing_late),
    Route("/_cleanups", cleanups),
]

app = Starlette(
    routes=[*ROUTES, Route("/_stats", lambda request: stats_of(supervisor))],
    lifespan=supervisor.lifespan,
    exception_handlers={MianzhangError: mianzhang_error},
)

fastapi_app = FastAPI(lifespan=fastapi_supervisor.lifespan)
fastapi_app.add_exception_handler(MianzhangError, mianzhang_error)


@fastapi_app.get("/stream")
async def fastapi_stream(key: str, mode: str = "idle") -> EventSourceResponse:
    content = sync_ticks(key) if mode == "sync" else idle_or_busy(key, busy=mode == "busy")
    return EventSourceResponse(content, ping=0.5)


@fastapi_app.get("/fail-early")
async def fastapi_fail_early(kind: str = "foreign") -> EventSourceResponse:
    return EventSourceResponse(fail_early(kind))


@fastapi_app.get("/fail-late")
async def fastapi_fail_late(kind: str = "foreign") -> EventSourceResponse:
    return EventSourceResponse(fail_late(kind))


@fastapi_app.get("/_cleanups")
async def fastapi_cleanups(request: Request) -> Response:
    return cleanups(request)


@fastapi_app.get("/_stats")
async def fastapi_stats() -> Response:
    return stats_of(fastapi_supervisor)
