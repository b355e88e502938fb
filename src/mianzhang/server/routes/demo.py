"""``GET /v1/demo/ticks``: a live, resumable demo stream straight from a generator.

It shows the response layer alone (no log): one event every ``interval`` seconds (0.05..10,
default 0.5) with id ``n``, up to ``count`` events (1..100000, default 1000); a reconnect with
``Last-Event-ID: n`` continues at ``n + 1``. Bad parameters are a 400 JSON error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..._errors import InvalidRequest
from ..._responses import EventSourceResponse
from ..._sse import ServerSentEvent, json_dumps
from .._errors import ErrorRoute

__all__ = ["demo_router"]


def _bad(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, problems=[{"loc": param, "msg": message}])


demo_router = APIRouter(prefix="/v1/demo", tags=["demo"], route_class=ErrorRoute)


@demo_router.get("/ticks", name="demo:ticks")
async def ticks(request: Request, interval: float = 0.5, count: int = 1000) -> Response:
    """One tick event per ``interval`` seconds; resumable with ``Last-Event-ID``."""
    if not 0.05 <= interval <= 10:
        raise _bad("interval", "interval must be between 0.05 and 10 seconds")
    if not 1 <= count <= 100_000:
        raise _bad("count", "count must be between 1 and 100000")
    last = request.headers.get("last-event-id", "0")
    if not last.isascii() or not last.isdigit():
        raise _bad("Last-Event-ID", "Last-Event-ID must be a tick number")
    start = int(last) + 1
    if start > count:
        return Response(status_code=204)  # read to the end: EventSource stops here

    async def events() -> AsyncIterator[ServerSentEvent]:
        for n in range(start, count + 1):
            payload = {"n": n, "of": count, "time": time.time()}
            yield ServerSentEvent(json_dumps(payload), event="tick", id=n)
            if n < count:
                await asyncio.sleep(interval)

    return EventSourceResponse(events(), headers={"X-Demo": "ticks"})
