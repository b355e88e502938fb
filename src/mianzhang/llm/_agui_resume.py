"""Resuming an AG-UI run: a continuation, not a replay (see :func:`~._agui_surface.agui_reopen`).

A client that lost its connection after receiving some of a run's events says how far it got,
either with the SSE id of the last event it received (``Last-Event-ID``: every AG-UI event of
our streams has one, by the reader's id rule ``{epoch}-{seq}`` / ``{epoch}-{seq}.{k}``) or
with the number of events it received (``?after=N``: for ``HttpAgent``, whose parser drops SSE
ids but whose subscribers see every event). :func:`agui_resume_events` rebuilds the events the
client received by encoding the log up to that point, sends :func:`agui_reopen` of them (the
``RUN_STARTED`` and the start of every message and tool call still open, no ids: a client that
drops during it resumes from the same point), then the run from that point on, with ids. The
client so gets every part once.

An id from another epoch (the log lost the stream's history) cannot be placed: the reader
then sends its ``reset`` and the stream from the oldest retained event, without a prelude.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from .._sse import ServerSentEvent
from ..log import EventLog, LogEvent, parse_id
from ..log.serve import ServeStatistics, sse_bytes
from ._agui_surface import AGUI, AGUIEncoder, agui_reopen
from ._canonical import StartRecord, parse_event, record_from_meta
from ._reader import ResumePoint, resume_point, surface_events
from ._surface import SurfaceContext, WireEvent
from ._types import Cancelled, Failed, Finished

__all__ = ["agui_received", "agui_resume_events"]

_PAGE = 1000


class _Received:
    """The wire events a client received, rebuilt from the log (see :func:`agui_received`)."""

    def __init__(self, encoder: AGUIEncoder, record: StartRecord) -> None:
        self.encoder = encoder
        self.record = record
        self.started = False
        self.ended = False
        self.wire: list[WireEvent] = []

    def group(self, event: LogEvent) -> list[WireEvent]:
        """The wire events of one log event, as the reader sends them."""
        parsed = parse_event(event.event, event.data)
        out: list[WireEvent] = []
        if not self.started:
            self.started = True
            out += self.encoder.encode(self.record.started)
            if isinstance(parsed, StartRecord):
                return out
        if parsed is None or isinstance(parsed, StartRecord) or self.ended:
            return out
        out += self.encoder.encode(parsed)
        if isinstance(parsed, Finished | Failed | Cancelled):
            self.ended = True
        return out


async def agui_received(
    log: EventLog, stream: str, *, after: str | None = None, count: int | None = None
) -> list[WireEvent]:
    """The AG-UI events of generation ``stream`` a client received: up to and including
    the event whose id is ``after``, or the first ``count``. Empty if neither is given, if
    the stream is unknown, or if ``after`` is not one of this stream's ids."""
    info = await log.info(stream)
    record = record_from_meta(info.meta) if info is not None else None
    if info is None or record is None or (after is None and count is None):
        return []
    point = resume_point(after) if after is not None else None
    last_seq, take_of_last = _upto(point, info.epoch)
    if point is not None and last_seq is None:
        return []
    options = record.options if record.surface == "agui" else {}
    started = record.started
    context = SurfaceContext(stream, started.model, started.created, options)
    received = _Received(AGUIEncoder(context), record)
    cursor: str | None = None
    while True:
        _, events = await log.read(stream, cursor, limit=_PAGE)
        for event in events:
            wire = received.group(event)
            if last_seq is not None and event.seq >= last_seq:
                cut = len(wire) if take_of_last is None else take_of_last
                return received.wire + wire[:cut]
            received.wire += wire
            if count is not None and len(received.wire) >= count:
                return received.wire[:count]
        if len(events) < _PAGE:
            return received.wire
        cursor = events[-1].id


def _upto(point: ResumePoint | None, epoch: str) -> tuple[int | None, int | None]:
    """The last log event a client received (its seq) and how many wire events of its group
    (``None``: all); ``(None, None)`` for an id of another epoch or none at all."""
    if point is None or point.follow_after is None:
        return None, None
    parsed = parse_id(point.follow_after)
    if parsed is None or parsed[0] != epoch:
        return None, None
    if point.partial_seq:
        return point.partial_seq, point.partial_from
    return parsed[1], None


async def agui_resume_events(
    log: EventLog,
    stream: str,
    *,
    after: str | None = None,
    count: int | None = None,
    stats: ServeStatistics | None = None,
) -> AsyncIterator[bytes | ServerSentEvent]:
    """Generation ``stream`` as AG-UI events for a client that received everything up to
    event id ``after`` or its first ``count`` events (see the module docstring). Raises like
    :func:`~mianzhang.llm.surface_events`."""
    received = await agui_received(log, stream, after=after, count=count)
    for name, data in agui_reopen(received):
        yield sse_bytes(None, name, data)
    skip = count if after is None and count else 0
    async for item in surface_events(log, stream, AGUI, after=after, skip=skip, stats=stats):
        yield item
