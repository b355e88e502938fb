"""Generic event-log stream routes (every feature's stream is readable here).

==================================  =========================================================
``GET /v1/streams/{id}``             SSE after ``Last-Event-ID`` / ``?last_event_id=``; 404
                                     JSON if unknown; 204 once a finished stream is read out;
                                     an LLM generation in the surface that started it, or
                                     ``?format=chat|responses|native|ui|agui`` (400 JSON
                                     if unknown)
``GET /v1/streams/{id}/info``        the stream's metadata and reader count (JSON)
``POST /v1/streams/{id}/cancel``     stop its producer on whichever instance runs it
==================================  =========================================================
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from ..._errors import Conflict, StreamNotFound
from ...llm._serve import serve_stream
from .._deps import Host
from .._errors import ErrorRoute

__all__ = ["streams_router"]

streams_router = APIRouter(prefix="/v1/streams", tags=["streams"], route_class=ErrorRoute)


@streams_router.get("/{stream}", name="streams:read")
async def read(
    request: Request, stream: str, host: Host, surface: str | None = Query(None, alias="format")
) -> Response:
    """Follow a stream as SSE, resuming after the client's last event id (a generation in its
    own surface, or in ``format``)."""
    return await serve_stream(host, request, stream, surface)


@streams_router.get("/{stream}/info", name="streams:info")
async def info(stream: str, host: Host) -> Response:
    """The stream's state, epoch, last id, retention and current readers."""
    found = await host.log.info(stream)
    if found is None:
        raise StreamNotFound(stream)
    return JSONResponse(
        {
            "stream": found.name,
            "state": found.state.value,
            "epoch": found.epoch,
            "created": found.created,
            "last_id": found.last_id,
            "length": found.length,
            "max_events": found.max_events,
            "ttl_after_close": found.ttl_after_close,
            "readers": await host.log.readers(stream),
            "meta": found.meta,
        }
    )


@streams_router.post("/{stream}/cancel", name="streams:cancel")
async def cancel(stream: str, host: Host) -> Response:
    """Stop the stream's producer: 200 ``{"cancelled": true}``, or 409 if already ended."""
    if await host.log.info(stream) is None:
        raise StreamNotFound(stream)
    if await host.cancel(stream):
        return JSONResponse({"stream": stream, "cancelled": True})
    raise Conflict(f"stream {stream!r} has already ended")
