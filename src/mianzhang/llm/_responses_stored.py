"""The Responses API object of a stored generation (``GET /v1/responses/{id}``).

:func:`stored_response` runs the stream's canonical events through the ``responses`` encoder
and builds the response object from its events (:class:`ResponseSnapshot`): final once the
generation ended, in progress (with the text so far) before. It never waits: a generation whose
first event is not logged yet is described from the start record in the stream's metadata.
"""

from __future__ import annotations

import contextlib
from contextlib import aclosing
from typing import Any

from .._errors import StreamNotFound
from ..log import EventLog, LogEvent
from ._canonical import StartRecord, parse_event, record_from_meta
from ._responses_format import RESPONSES
from ._responses_input import ResponseSnapshot
from ._surface import SurfaceContext, SurfaceEncoder
from ._types import Cancelled, Failed, Finished

__all__ = ["final_response", "stored_response"]

_PAGE = 1000


async def _stored_events(log: EventLog, stream: str) -> list[LogEvent]:
    events: list[LogEvent] = []
    after: str | None = None
    while True:
        _, batch = await log.read(stream, after, limit=_PAGE)
        events.extend(batch)
        if len(batch) < _PAGE:
            return events
        after = batch[-1].id


def _encoder(stream: str, record: StartRecord) -> SurfaceEncoder:
    started = record.started
    options = record.options if record.surface == RESPONSES.name else {}
    return RESPONSES.encoder(SurfaceContext(stream, started.model, started.created, options))


async def stored_response(log: EventLog, stream: str) -> dict[str, Any] | None:
    """The response object of generation ``stream`` as logged so far; ``None`` if there is no
    such stream or it is not a generation."""
    info = await log.info(stream)
    record = record_from_meta(info.meta) if info is not None else None
    if record is None:
        return None
    parsed = [parse_event(e.event, e.data) for e in await _stored_events(log, stream)]
    if parsed and isinstance(parsed[0], StartRecord):
        record = parsed[0]
    encoder = _encoder(stream, record)
    snapshot = ResponseSnapshot()
    for event in [record.started, *parsed]:
        if event is None or isinstance(event, StartRecord):
            continue
        for _, data in encoder.encode(event):
            snapshot.apply(data)
        if isinstance(event, Finished | Failed | Cancelled):
            break
    return snapshot.result()


async def final_response(log: EventLog, stream: str) -> dict[str, Any] | None:
    """Follow ``stream`` (counting as its reader) until it ends, then its final response
    object; ``None`` if the stream is gone."""
    with contextlib.suppress(StreamNotFound):
        async with aclosing(log.follow(stream)) as items:
            async for _ in items:
                pass
        return await stored_response(log, stream)
    return None
