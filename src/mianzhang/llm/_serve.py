"""Serving generation streams over HTTP: ``GET /v1/streams/{id}`` for generations.

:func:`serve_stream` answers the generic stream route for every stream: a generation is read
through its surface encoder (``_reader.py``), in its home surface (the API that started it,
from the stream's metadata) or in the one asked for with ``?format=``; any other stream is
served by the generic log reader. Answers before the stream: 404 JSON for an unknown stream,
:class:`~mianzhang.InvalidRequest` (400) for an unknown format (or a format asked of a stream
that is not a generation), 204 for a finished stream the client has read to its end (so
``EventSource`` stops reconnecting).

A generation stream written by a version before canonical logs (its metadata has no
``options``: it holds its wire events) is served as it is stored, by the generic reader, so a
client resuming during a rolling upgrade still gets its stream.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .._errors import InvalidRequest
from ..log import StreamState
from ..log.serve import StreamHost, requested_after
from ._canonical import record_from_meta
from ._reader import surface_events
from ._surface import Surface
from ._surface_registry import SURFACES, surface_named

__all__ = ["serve_stream", "surface_response"]


def _bad_format(message: str) -> InvalidRequest:
    return InvalidRequest(message, problems=[{"loc": "format", "msg": message}])


def surface_response(
    host: StreamHost, stream: str, surface: Surface, after: str | None, *, skip: int = 0
) -> Response:
    """The SSE response reading generation ``stream`` in ``surface`` after ``after``."""
    if after is not None or skip:
        host.stats.resumes += 1
    events = surface_events(host.log, stream, surface, after=after, skip=skip, stats=host.stats)
    return host.response(events, {**surface.headers, "X-Stream-Id": stream})


async def serve_stream(
    host: StreamHost, request: Request, stream: str, format: str | None = None
) -> Response:
    """``GET /v1/streams/{id}`` (see the module docstring)."""
    info = await host.log.info(stream)
    record = record_from_meta(info.meta) if info is not None else None
    legacy = info is not None and record is not None and "options" not in info.meta
    if info is None or legacy or (record is None and format is None):
        return await host.reader(request, stream, info=info)
    if record is None:
        raise _bad_format(f"stream {stream!r} is not a generation: it has no formats")
    surface = surface_named(format or record.surface)
    if surface is None:
        known = ", ".join(sorted(SURFACES))
        raise _bad_format(f"unknown format {format or record.surface!r} (known: {known})")
    after = requested_after(request)
    if info.state is not StreamState.OPEN and after is not None and after == info.last_id:
        return Response(status_code=204)
    return surface_response(host, stream, surface, after)
