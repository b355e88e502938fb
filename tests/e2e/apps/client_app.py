"""A Starlette app that streams hand-written SSE bytes, for the client's e2e tests.

Raw bytes (``StreamingResponse``), not an SSE library, so a test can send exactly the edge case
it needs (unterminated events, control events, odd ids). Run with
``uvicorn_process("tests.e2e.apps.client_app:create_app", factory=True)``.

Every request is logged under its ``key`` query parameter (``GET /_log?key=K`` returns them:
path, method, raw ``Last-Event-ID`` decoded as UTF-8 or ``null``, unix time, status), so one
server serves a whole test module and each test reads only its own requests.

* ``GET /events?n=&delay=&hb=&retry=&per_conn=&hold=&pad=``: events ``id: i`` / ``data:
  {"i": i, "pad": "..."}`` for i after the request's ``Last-Event-ID`` up to ``n``; ``delay``
  seconds between events, a ``: hb`` comment every ``hb`` seconds of waiting, ``retry: R``
  first if given, at most ``per_conn`` events per connection (then EOF); with ``hold=1`` the
  connection stays open after the last event (heartbeats only). Asked to resume at or after
  ``n`` without ``hold``: 204.
* ``GET /script/{name}``: the ``k``-th connection for a key gets ``SCRIPTS[name][k]``; once the
  script is exhausted: 204.
* ``GET /status/{code}?size=``: that status, ``size`` bytes of ``text/plain`` body.
* ``GET /text``: 200 ``text/plain``. ``GET /big?size=``: one event of ``size`` characters.
* ``POST /echo``: one event (id 1) whose data is the request body; 204 when resumed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

SSE = "text/event-stream"

# (bytes to send, hold the connection open afterwards) per connection.
SCRIPTS: dict[str, list[tuple[bytes, bool]]] = {
    "unterminated": [(b"id: 1\ndata: one\n\nid: 2\ndata: two\n", False)],
    "unterminated-only": [(b"id: 7\ndata: seven\n", False)],
    "reset": [
        (
            b"id: e2-1\nevent: reset\n"
            b'data: {"reason": "epoch", "requested": "e1-5", "first_available": "e2-1",'
            b' "epoch": "e2"}\n\n'
            b"id: e2-1\ndata: first\n\n",
            False,
        )
    ],
    "reconnect": [(b"id: 1\ndata: one\n\nevent: reconnect\ndata: bye\nretry: 300\n\n", True)],
    "retry": [(b"retry: 700\nid: 1\ndata: one\n\n", False)],
    "unicode": [("id: ünï-☃\ndata: x\n\n".encode(), False)],
    "cleared-id": [(b"id: 5\ndata: a\n\nid\ndata: b\n\n", False)],
}


def create_app() -> Starlette:
    log: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def record(request: Request, status: int) -> int:
        raw = dict(request.scope["headers"]).get(b"last-event-id")
        log[request.query_params.get("key", "")].append(
            {
                "path": request.url.path,
                "method": request.method,
                "last_event_id": None if raw is None else raw.decode("utf-8", "replace"),
                "t": time.time(),
                "status": status,
            }
        )
        return len(log[request.query_params.get("key", "")]) - 1

    def resumed_after(request: Request) -> int:
        value = request.headers.get("last-event-id", "")
        return int(value) if value.isdigit() else 0

    async def waiting(seconds: float, hb: float) -> AsyncIterator[bytes]:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if not hb:
                await asyncio.sleep(left)
                return
            await asyncio.sleep(min(hb, left))
            yield b": hb\n"

    async def events(request: Request) -> Response:
        q = request.query_params
        n, delay, hb = int(q.get("n", "10")), float(q.get("delay", "0")), float(q.get("hb", "0"))
        per_conn = int(q.get("per_conn", "0")) or None
        hold, pad = q.get("hold") == "1", "p" * int(q.get("pad", "0"))
        start = resumed_after(request)
        if start >= n and not hold:
            record(request, 204)
            return Response(status_code=204)
        record(request, 200)

        async def body() -> AsyncIterator[bytes]:
            if "retry" in q:
                yield f"retry: {int(q['retry'])}\n\n".encode()
            for sent, i in enumerate(range(start + 1, n + 1), 1):
                if sent > 1 and delay:
                    async for beat in waiting(delay, hb):
                        yield beat
                yield f"id: {i}\ndata: {json.dumps({'i': i, 'pad': pad})}\n\n".encode()
                if per_conn and sent >= per_conn:
                    return
            while hold:
                async for beat in waiting(3600, hb or 1.0):
                    yield beat

        return StreamingResponse(body(), media_type=SSE, headers={"cache-control": "no-store"})

    async def script(request: Request) -> Response:
        steps = SCRIPTS[request.path_params["name"]]
        key = request.query_params.get("key", "")
        index = sum(1 for entry in log[key] if entry["path"] == request.url.path)
        if index >= len(steps):
            record(request, 204)
            return Response(status_code=204)
        record(request, 200)
        payload, hold = steps[index]

        async def body() -> AsyncIterator[bytes]:
            yield payload
            while hold:
                async for beat in waiting(3600, 0.2):
                    yield beat

        return StreamingResponse(body(), media_type=SSE)

    async def status(request: Request) -> Response:
        code = int(request.path_params["code"])
        record(request, code)
        return PlainTextResponse("x" * int(request.query_params.get("size", "10")), code)

    async def text(request: Request) -> Response:
        record(request, 200)
        return PlainTextResponse("hello, not a stream")

    async def big(request: Request) -> Response:
        record(request, 200)
        size = int(request.query_params.get("size", "100000"))
        return StreamingResponse(iter([b"id: 1\ndata: ", b"x" * size, b"\n\n"]), media_type=SSE)

    async def echo(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("last-event-id"):
            record(request, 204)
            return Response(status_code=204)
        record(request, 200)
        return Response(b"id: 1\ndata: " + body + b"\n\n", media_type=SSE)

    async def get_log(request: Request) -> Response:
        return JSONResponse(log.get(request.query_params.get("key", ""), []))

    return Starlette(
        routes=[
            Route("/events", events),
            Route("/script/{name}", script),
            Route("/status/{code:int}", status),
            Route("/text", text),
            Route("/big", big),
            Route("/echo", echo, methods=["POST"]),
            Route("/_log", get_log),
        ]
    )
