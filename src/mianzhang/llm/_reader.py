"""Reading a generation in a surface: its canonical log events, encoded at read time.

:func:`surface_events` follows a generation's log stream, parses each event
(``_canonical.py``), runs it through a fresh encoder of the requested surface and yields the
SSE events. One generation can so be read in every surface at once, on any instance.

Ids
---
A log event (``{epoch}-{seq}``) may encode to several wire events (a group). The last wire
event of the group gets the log event's plain id ``{epoch}-{seq}``; the earlier ones get
``{epoch}-{seq}.{k}`` (``k``: 0-based index in the group). A log event that encodes to nothing
sends no id. So ``Last-Event-ID: {epoch}-{seq}`` means "everything up to log event ``seq``
was delivered" (the generic log reader's meaning), and ``{epoch}-{seq}.{k}`` "the group of
``seq`` was delivered up to wire event ``k``": a reader resumes exactly after it.

Resume
------
Encoders are pure, so a resuming reader rebuilds its encoder by replaying the events before the
resume point into it (their output dropped), then follows the log after that point. What the
log cannot deliver is never skipped silently: an id from another epoch, an unparseable or
unknown id, or history trimmed away gives a ``reset`` event first, exactly as the generic log
reader (``log/serve.py``), then the stream from the oldest retained event. Responses API
``starting_after=N`` is ``skip=N + 1``: the first ``N + 1`` wire events (sequence numbers
``0..N``) are dropped, by replay.

Ends
----
The reader stops after the first terminal event (``Finished``, ``Failed``, ``Cancelled``) and
the surface's closing events (``end()``); anything logged after it is ignored. A stream that
ends without a terminal event (its owner died and it was marked cancelled) still ends with the
surface's cancelled shape (reason ``interrupted``, no id: a reconnecting client resumes after
the last real event and gets the same end). A stream whose first event is not ``gen.start``
(stopped before it began, or its head trimmed) starts its encoder from the start record kept in
the stream's metadata; the start's wire events then belong to the first event read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing

from .._sse import ServerSentEvent
from ..log import EventLog, LogEvent, Reset
from ..log.serve import ServeStatistics, counted_reset, sse_bytes
from ._canonical import StartRecord, parse_event, record_from_meta
from ._surface import Surface, SurfaceContext, SurfaceEncoder, WireEvent
from ._types import Cancelled, Failed, Finished, GenEvent, Timings, Token, Usage

__all__ = ["ResumePoint", "resume_point", "surface_events"]

_TERMINAL = (Finished, Failed, Cancelled)
_REPLAY_PAGE = 1000
_EVERYTHING = 1 << 62


@dataclasses.dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a reader starts: ``follow_after`` is the log id to follow after (``None``: from
    the start); the group of log event ``partial_seq`` is delivered from wire index
    ``partial_from`` on (``partial_seq`` 0: no partial group)."""

    follow_after: str | None
    partial_seq: int = 0
    partial_from: int = 0


def resume_point(last_event_id: str | None) -> ResumePoint:
    """The resume point of a client's ``Last-Event-ID`` (see the module docstring). An id that
    is not a group id is passed to the log as is (which resets on an invalid one)."""
    if last_event_id is None:
        return ResumePoint(None)
    epoch, sep, rest = last_event_id.rpartition("-")
    seq, dot, index = rest.partition(".")
    if not (sep and epoch and dot and seq.isdigit() and index.isdigit()):
        return ResumePoint(last_event_id)
    if not (seq.isascii() and index.isascii()) or int(seq) < 1:
        return ResumePoint(last_event_id)
    number = int(seq)
    return ResumePoint(f"{epoch}-{number - 1}", number, int(index) + 1)


def _no_encoder(event: GenEvent) -> list[WireEvent]:
    raise RuntimeError("the reader has no encoder yet")


class _Encoding:
    """One reader's encoder: log events in, SSE bytes out (ids, resume point, skipping)."""

    __slots__ = (
        "_encode",
        "_fast",
        "_partial_from",
        "_partial_seq",
        "_pending",
        "_skip",
        "_stream_id",
        "_surface",
        "encoder",
        "ended",
        "tokens",
    )

    def __init__(self, surface: Surface, stream_id: str, point: ResumePoint, skip: int) -> None:
        self._surface = surface
        self._stream_id = stream_id
        self._partial_seq = point.partial_seq
        self._partial_from = point.partial_from
        self._skip = skip
        self._pending: list[WireEvent] = []  # a start from metadata, sent with the next group
        self._fast = False  # an encoder, not ended, nothing pending: tokens go straight in
        self._encode: Callable[[GenEvent], list[WireEvent]] = _no_encoder
        self.encoder: SurfaceEncoder | None = None
        self.ended = False
        self.tokens = 0

    def begin(self, record: StartRecord, *, from_meta: bool = False) -> None:
        """Create the encoder for ``record`` (the home surface's options only for it)."""
        started = record.started
        options = record.options if record.surface == self._surface.name else {}
        context = SurfaceContext(self._stream_id, started.model, started.created, options)
        self.encoder = encoder = self._surface.encoder(context)
        self._encode = encoder.encode
        if from_meta:
            self._pending = encoder.encode(started)
        self._fast = not self._pending

    def _wire(self, event: GenEvent | StartRecord | None) -> list[WireEvent]:
        """The wire events of any event (the general path of :meth:`feed`)."""
        if isinstance(event, StartRecord):
            if self.encoder is None:
                self.begin(event)
            event = event.started
        encoder = self.encoder
        if event is None or encoder is None or self.ended:
            return []
        wire = encoder.encode(event)
        if isinstance(event, Token):
            self.tokens += 1
        elif isinstance(event, _TERMINAL):
            self.ended = True
            wire = wire + encoder.end()
        if self._pending:
            wire, self._pending = self._pending + wire, []
        self._fast = not self.ended
        return wire

    def forget_partial(self) -> None:
        self._partial_seq = 0

    def replay(self, event: LogEvent) -> None:
        """Feed ``event`` before the resume point: the encoder's state only."""
        self._wire(parse_event(event.event, event.data))

    def feed(self, event: LogEvent) -> list[bytes]:
        """The SSE events of ``event`` (see the module docstring for ids)."""
        parsed = parse_event(event.event, event.data)
        if self._fast and type(parsed) is Token:  # the hot path
            self.tokens += 1
            wire = self._encode(parsed)
        else:
            wire = self._wire(parsed)
        if self._partial_seq or self._skip:
            return self._frame(event, wire, self._drop(event.seq, len(wire)))
        if len(wire) == 1:
            name, data = wire[0]
            return [sse_bytes(event.id, name, data)]
        return self._frame(event, wire, 0)

    def _drop(self, seq: int, count: int) -> int:
        """How many of the ``count`` wire events of log event ``seq`` were delivered before."""
        drop = 0
        if seq == self._partial_seq:
            drop, self._partial_seq = self._partial_from, 0
        if self._skip:
            skipped = min(self._skip, count)
            self._skip -= skipped
            drop = max(drop, skipped)
        return drop

    @staticmethod
    def _frame(event: LogEvent, wire: list[WireEvent], drop: int) -> list[bytes]:
        ident = event.id
        last = len(wire) - 1
        return [
            sse_bytes(ident if k == last else f"{ident}.{k}", name, data)
            for k, (name, data) in enumerate(wire)
            if k >= drop
        ]

    def interrupted(self) -> list[bytes]:
        """The surface's cancelled shape for a stream that ended without a terminal event."""
        if self.ended or self.encoder is None:
            return []
        cancelled = Cancelled("interrupted", Usage(), Timings(None, 0.0, 0), self.tokens > 0)
        wire = self._wire(cancelled)
        return [sse_bytes(None, name, data) for name, data in wire]


class _Reader:
    """The state of :func:`surface_events` between log items."""

    def __init__(
        self,
        log: EventLog,
        stream: str,
        encoding: _Encoding,
        requested: str | None,
        stats: ServeStatistics | None,
    ) -> None:
        self.log = log
        self.stream = stream
        self.encoding = encoding
        self.requested = requested
        self.stats = stats
        self.reset = False

    async def _meta_start(self) -> None:
        info = await self.log.info(self.stream)
        record = record_from_meta(info.meta) if info is not None else None
        if record is None:
            raise ValueError(f"stream {self.stream!r} is not a generation")
        self.encoding.begin(record, from_meta=True)

    async def _replay_before(self, seq: int) -> None:
        """Replay the log events before ``seq`` into the encoder."""
        after: str | None = None
        while True:
            _, events = await self.log.read(self.stream, after, limit=_REPLAY_PAGE)
            for event in events:
                if event.seq >= seq:
                    return
                await self._ensure_started(event)
                self.encoding.replay(event)
            if len(events) < _REPLAY_PAGE:
                return
            after = events[-1].id

    async def _ensure_started(self, event: LogEvent) -> None:
        if self.encoding.encoder is None and event.event != "gen.start":
            await self._meta_start()

    async def first(self, item: LogEvent | Reset) -> Sequence[bytes | ServerSentEvent]:
        """Items until the encoder exists: a reset, the replay of what precedes the first
        followed event, the start of the encoder."""
        if isinstance(item, Reset):
            self.reset = True
            self.encoding.forget_partial()  # the resume point is gone: deliver everything
            return [counted_reset(dataclasses.replace(item, requested=self.requested), self.stats)]
        if not self.reset and item.seq > 1:
            await self._replay_before(item.seq)
        await self._ensure_started(item)
        return self.encoding.feed(item)

    async def end(self) -> list[bytes]:
        """After the log stream ended: the surface's cancelled shape if no terminal event was
        read (a resumed reader that got nothing new first replays what it had seen)."""
        if self.encoding.encoder is None and not self.reset:
            await self._replay_before(_EVERYTHING)
        if self.encoding.encoder is None:
            await self._meta_start()
        return self.encoding.interrupted()


async def surface_events(
    log: EventLog,
    stream: str,
    surface: Surface,
    *,
    after: str | None = None,
    skip: int = 0,
    stats: ServeStatistics | None = None,
) -> AsyncIterator[bytes | ServerSentEvent]:
    """Generation ``stream`` in ``surface`` as SSE events, after ``after`` (a ``Last-Event-ID``
    of this reader's ids) and without its first ``skip`` wire events; ends after the
    surface's closing events (see the module docstring).

    Raises ``StreamNotFound`` on first iteration if the stream does not exist, ``ValueError``
    if it is not a generation. Closing this iterator closes the follow.
    """
    point = resume_point(after)
    encoding = _Encoding(surface, stream, point, skip)
    reader = _Reader(log, stream, encoding, after, stats)
    async with aclosing(log.follow(stream, point.follow_after)) as items:
        async for item in items:
            out: Sequence[bytes | ServerSentEvent]
            if type(item) is LogEvent and encoding.encoder is not None:
                out = encoding.feed(item)
            elif isinstance(item, Reset) and encoding.encoder is not None:
                out = [counted_reset(item, stats)]
            else:
                out = await reader.first(item)
            for chunk in out:
                yield chunk
            if encoding.ended:
                return
    for chunk in await reader.end():
        yield chunk
