"""A user's own app, for ``mianzhang run`` / ``mianzhang.server.run``: reports whether its
server offers the ``mianzhang.transport`` extension, and streams three events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mianzhang import EventSourceResponse


async def probe(request: Request) -> JSONResponse:
    extensions = request.scope.get("extensions") or {}
    return JSONResponse({"transport": "mianzhang.transport" in extensions})


async def events(request: Request) -> EventSourceResponse:
    async def three() -> AsyncIterator[str]:
        for i in range(3):
            yield f"event {i}"

    return EventSourceResponse(three())


app = Starlette(routes=[Route("/probe", probe), Route("/events", events)])
