"""The SSE peers compared by ``bench/sse_peers.py``, one ASGI app per peer.

The peer is chosen by the environment variable ``MZ_BENCH_PEER`` when uvicorn imports
``bench._sse_peer_apps:app``. Every app serves the same two endpoints with the same bytes on the
wire (each event is exactly 100 bytes: ``data: `` + 92 payload bytes + ``\\n\\n``):

* ``GET /stream?n=N`` — N events as fast as the peer can produce them, then the end of the body;
* ``GET /idle`` — one event, then nothing but the peer's heartbeat (every 15 s) until the client
  leaves (the generator sleeps at most an hour: bounded).

How each peer is used (its documented, ordinary way):

* ``mianzhang`` — ``mianzhang.EventSourceResponse`` over a generator of ``ServerSentEvent``
  objects (defaults: ping 15 s, send_timeout 30 s); ``mianzhang-bytes`` — the same response
  over pre-encoded ``bytes`` (isolates the engine from the encoder);
* ``sse-starlette`` — ``sse_starlette.EventSourceResponse`` over ``ServerSentEvent`` (ping 15 s,
  ``sep="\\n"`` on the response and the events: its default is CRLF, which would make every
  event 2 bytes longer and not end in ``\\n\\n``);
* ``fastapi.sse`` — a FastAPI path operation with ``response_class=EventSourceResponse`` that
  yields ``fastapi.sse.ServerSentEvent(raw_data=...)`` (``raw_data`` so the wire bytes are the
  same as the others; ``data`` would JSON-quote the string);
* ``streaming`` — Starlette ``StreamingResponse`` over a generator of pre-encoded bytes (its
  "heartbeat" is the generator yielding a comment every 15 s);
* ``raw`` — a bare ASGI callable sending one ``http.response.body`` message per pre-encoded event
  (one constant message dict: the cheapest thing Python can hand to uvicorn).

The Starlette-based peers are mounted on a bare ``Starlette`` router; ``fastapi.sse`` needs
FastAPI's router (its SSE encoding lives in FastAPI's routing layer). The ``-asgi`` variants
(``mianzhang-asgi``, ``sse-starlette-asgi``, ``streaming-asgi``) call the same responses as
bare ASGI apps, without a router, like ``raw``: they compare the response classes alone (a
Starlette route keeps about 5 KiB of its own frames alive per open stream).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

PAYLOAD = "x" * 92
EVENT = b"data: " + PAYLOAD.encode() + b"\n\n"
PING = b": ping\n\n"
HEARTBEAT = 15.0
IDLE_CAP = 3600.0
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
assert len(EVENT) == 100

PEERS = (
    "mianzhang",
    "mianzhang-bytes",
    "sse-starlette",
    "fastapi.sse",
    "streaming",
    "raw",
    "mianzhang-asgi",
    "sse-starlette-asgi",
    "streaming-asgi",
)


def _count(query: str | None) -> int:
    return max(0, min(int(query or 1), 10_000_000))


def _asgi_app(make_stream: Any, make_idle: Any) -> Any:
    """The same two endpoints with the response called as a bare ASGI app (no router)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/stream":
            query = scope["query_string"].decode()
            response = make_stream(_count(query[2:] if query.startswith("n=") else None))
        elif scope["path"] == "/idle":
            response = make_idle()
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await response(scope, receive, send)

    return app


def _mount(asgi: bool, make_stream: Any, make_idle: Any) -> Any:
    return (_asgi_app if asgi else _starlette_app)(make_stream, make_idle)


def _starlette_app(make_stream: Any, make_idle: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    async def stream(request: Request) -> Any:
        return make_stream(_count(request.query_params.get("n")))

    async def idle(request: Request) -> Any:
        return make_idle()

    return Starlette(routes=[Route("/stream", stream), Route("/idle", idle)])


def mianzhang_app(as_bytes: bool, asgi: bool = False) -> Any:
    from mianzhang import EventSourceResponse, ServerSentEvent

    async def events(n: int) -> AsyncIterator[Any]:
        if as_bytes:
            for _ in range(n):
                yield EVENT
        else:
            for _ in range(n):
                yield ServerSentEvent(PAYLOAD)

    async def idle() -> AsyncIterator[Any]:
        yield EVENT if as_bytes else ServerSentEvent(PAYLOAD)
        await asyncio.sleep(IDLE_CAP)

    return _mount(
        asgi,
        lambda n: EventSourceResponse(events(n)),
        lambda: EventSourceResponse(idle(), ping=HEARTBEAT),
    )


def sse_starlette_app(asgi: bool = False) -> Any:
    from sse_starlette import EventSourceResponse, ServerSentEvent

    async def events(n: int) -> AsyncIterator[Any]:
        for _ in range(n):
            yield ServerSentEvent(PAYLOAD, sep="\n")

    async def idle() -> AsyncIterator[Any]:
        yield ServerSentEvent(PAYLOAD, sep="\n")
        await asyncio.sleep(IDLE_CAP)

    return _mount(
        asgi,
        lambda n: EventSourceResponse(events(n), ping=HEARTBEAT, sep="\n"),
        lambda: EventSourceResponse(idle(), ping=HEARTBEAT, sep="\n"),
    )


def streaming_app(asgi: bool = False) -> Any:
    from starlette.responses import StreamingResponse

    async def events(n: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield EVENT

    async def idle() -> AsyncIterator[bytes]:
        yield EVENT
        for _ in range(int(IDLE_CAP / HEARTBEAT)):
            await asyncio.sleep(HEARTBEAT)
            yield PING

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return _mount(
        asgi,
        lambda n: StreamingResponse(events(n), media_type="text/event-stream", headers=headers),
        lambda: StreamingResponse(idle(), media_type="text/event-stream", headers=headers),
    )


def fastapi_app() -> Any:
    from fastapi import FastAPI
    from fastapi.sse import EventSourceResponse, ServerSentEvent

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/stream", response_class=EventSourceResponse)
    async def stream(n: int = 1) -> AsyncIterator[ServerSentEvent]:
        for _ in range(_count(str(n))):
            yield ServerSentEvent(raw_data=PAYLOAD)

    @app.get("/idle", response_class=EventSourceResponse)
    async def idle() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(raw_data=PAYLOAD)
        await asyncio.sleep(IDLE_CAP)  # FastAPI sends ": ping" after 15 s idle by itself

    return app


def raw_app() -> Any:
    start = {"type": "http.response.start", "status": 200, "headers": HEADERS}
    body = {"type": "http.response.body", "body": EVENT, "more_body": True}
    ping = {"type": "http.response.body", "body": PING, "more_body": True}
    end = {"type": "http.response.body", "body": b"", "more_body": False}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/stream":
            query = scope["query_string"].decode()
            n = _count(query[2:] if query.startswith("n=") else None)
            await send(start)
            for _ in range(n):
                await send(body)
            await send(end)
        elif path == "/idle":
            await send(start)
            await send(body)
            for _ in range(int(IDLE_CAP / HEARTBEAT)):
                try:
                    async with asyncio.timeout(HEARTBEAT):
                        if (await receive())["type"] == "http.disconnect":
                            return
                except TimeoutError:
                    await send(ping)
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send(end)

    return app


def build(peer: str) -> Any:
    if peer in ("mianzhang", "mianzhang-bytes", "mianzhang-asgi"):
        return mianzhang_app(peer == "mianzhang-bytes", asgi=peer == "mianzhang-asgi")
    if peer in ("sse-starlette", "sse-starlette-asgi"):
        return sse_starlette_app(asgi=peer == "sse-starlette-asgi")
    if peer == "fastapi.sse":
        return fastapi_app()
    if peer in ("streaming", "streaming-asgi"):
        return streaming_app(asgi=peer == "streaming-asgi")
    if peer == "raw":
        return raw_app()
    raise SystemExit(f"unknown MZ_BENCH_PEER {peer!r}; one of {', '.join(PEERS)}")


app = build(os.environ.get("MZ_BENCH_PEER", "raw"))
