"""Serving a log stream as SSE: the reader side of every feature.

:func:`log_events` turns ``follow(stream, after)`` into SSE events: each log event keeps its
id, so the browser's ``Last-Event-ID`` (or ``?last_event_id=``) resumes exactly after the last
event it saw, on any instance sharing the log. Lost history is never silent: the reader first
gets a ``reset`` event (JSON: ``reason``, ``requested``, ``first_available``, ``epoch``) whose id
is the position just before the oldest retained event, so a reconnect after the reset resumes
from there instead of asking for the lost id again.

:class:`StreamHost` bundles what routes need: the log, SSE responses (any event iterator, with
the host's ping, send timeout and shutdown supervisor: :meth:`StreamHost.response`), readers
that follow a log stream (:meth:`StreamHost.sse`), and the :class:`ProducerRunner` that owns
the producers. Features that encode a stream at read time (LLM generations, ``mianzhang.llm``)
build their own event iterator and hand it to :meth:`StreamHost.response`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .._error_body import error_body
from .._responses import DEFAULT_OPEN_TIMEOUT, EventSourceResponse, StreamSupervisor
from .._sse import ServerSentEvent, encode_data
from ._fanout import Push
from ._producer_end import Closing, OnEnd
from ._producers import LogEntry, ProducerRunner
from ._protocol import EventLog, LogEvent, Reset, StreamInfo, StreamState, format_id, parse_id

__all__ = [
    "LogFeed",
    "ServeStatistics",
    "StreamHost",
    "counted_reset",
    "encode_event",
    "log_events",
    "requested_after",
    "reset_event",
    "sse_bytes",
]


def reset_event(reset: Reset) -> ServerSentEvent:
    """The ``reset`` SSE event announcing lost history (see the module docstring)."""
    payload = {
        "reason": reset.reason,
        "requested": reset.requested,
        "first_available": reset.first_available,
        "epoch": reset.epoch,
    }
    seq = 0
    if reset.first_available is not None:
        parsed = parse_id(reset.first_available)
        if parsed is not None:
            seq = parsed[1] - 1
    return ServerSentEvent(
        orjson.dumps(payload).decode(), event="reset", id=format_id(reset.epoch, seq)
    )


@dataclass
class ServeStatistics:
    """What the readers of one :class:`StreamHost` were given: resumes (a reader starting
    after an id) and ``reset`` events by reason."""

    resumes: int = 0
    resets: dict[str, int] = field(default_factory=dict)


def log_events(
    log: EventLog,
    stream: str,
    after: str | None = None,
    *,
    stats: ServeStatistics | None = None,
) -> AsyncIterator[ServerSentEvent | bytes]:
    """``stream`` after ``after`` as SSE events, ending when the stream ends.

    Raises ``StreamNotFound`` on first iteration if the stream does not exist (before any
    byte is sent, so a response turns it into a 404). Closing this iterator closes the follow.
    """
    return _events(log.follow(stream, after), stats)


def encode_event(event: LogEvent) -> bytes:
    """One log event as SSE bytes (:func:`sse_bytes`): the encoder shared by every pushed
    reader, so one pass encodes each event once for all of them."""
    return sse_bytes(event.id, event.event, event.data)


class LogFeed:
    """:func:`log_events` as the content of a response that can push (a *live source* of
    ``mianzhang._responses``). Iterated plainly it is :func:`log_events`. Through
    ``push_iter(deliver)`` (what the response engine does), on a log whose ``follow`` takes
    ``push`` (the memory and Redis logs), a reader that has caught up is parked on its stream
    and new events are pushed to the response, encoded once for every such reader
    (``log._fanout``). Order, ids, resets and the end are those of :func:`log_events`."""

    __slots__ = ("_after", "_log", "_stats", "_stream")

    def __init__(
        self, log: EventLog, stream: str, after: str | None, stats: ServeStatistics | None
    ) -> None:
        self._log = log
        self._stream = stream
        self._after = after
        self._stats = stats

    def __aiter__(self) -> AsyncIterator[ServerSentEvent | bytes]:
        return log_events(self._log, self._stream, self._after, stats=self._stats)

    def push_iter(self, deliver: Callable[[bytes, int], bool]) -> AsyncIterator[Any]:
        follow = cast(_PushFollow, self._log).follow
        try:
            items = follow(self._stream, self._after, push=Push(deliver, encode_event))
        except TypeError:  # a log whose follow cannot push: plain iteration
            return self.__aiter__()
        return _events(items, self._stats)


class _PushFollow(Protocol):
    def follow(
        self, stream: str, after: str | None = None, *, push: Push | None = None
    ) -> AsyncGenerator[LogEvent | Reset, None]: ...


async def _events(
    follow: AsyncGenerator[LogEvent | Reset, None], stats: ServeStatistics | None
) -> AsyncIterator[ServerSentEvent | bytes]:
    """A follow's items as SSE events (resets counted in ``stats``); closes the follow."""
    async with aclosing(follow) as items:
        async for item in items:
            if isinstance(item, Reset):
                yield counted_reset(item, stats)
            else:
                yield sse_bytes(item.id, item.event, item.data)


def counted_reset(reset: Reset, stats: ServeStatistics | None) -> ServerSentEvent:
    """:func:`reset_event`, counted in ``stats`` by reason."""
    if stats is not None:
        stats.resets[reset.reason] = stats.resets.get(reset.reason, 0) + 1
    return reset_event(reset)


def sse_bytes(event_id: str | None, name: str | None, data: str) -> bytes:
    """One SSE event, encoded. The hot path of every reader: ``event_id`` is trusted (made by
    the log or a reader from log ids); a ``name`` with a line break raises ``SSEEncodeError``
    (it is never allowed to inject a field); multi-line ``data`` is split into lines."""
    head = "" if event_id is None else f"id: {event_id}\n"
    if name is not None:
        if "\n" in name or "\r" in name:
            return ServerSentEvent(data, event=name, id=event_id).encode()  # raises
        head = f"{head}event: {name}\n"
    if "\n" in data or "\r" in data:
        return head.encode() + encode_data(data)
    return f"{head}data: {data}\n\n".encode()


def requested_after(request: Request) -> str | None:
    """The id a reader resumes after: ``Last-Event-ID`` header, else ``?last_event_id=``."""
    value = request.headers.get("last-event-id")
    if value is None:
        value = request.query_params.get("last_event_id")
    return value or None


class StreamHost:
    """The log, its SSE readers and its producers, as the routes of one app use them."""

    def __init__(
        self,
        log: EventLog,
        *,
        supervisor: StreamSupervisor | None = None,
        grace_period: float = 10.0,
        poll_interval: float = 0.5,
        ping: float | None = None,
        send_timeout: float | None = 30.0,
        lease_ttl: float = 5.0,
    ) -> None:
        self.log = log
        self.supervisor = supervisor
        self.producers = ProducerRunner(
            log, grace_period=grace_period, poll_interval=poll_interval, lease_ttl=lease_ttl
        )
        self.ping = ping
        self.send_timeout = send_timeout
        self.stats = ServeStatistics()

    def sse(
        self,
        request: Request,
        stream: str,
        after: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """An SSE response following ``stream`` after ``after`` (``None``: from the start).
        The route has checked the stream: the head leaves at once, without waiting for an
        event; a caught-up reader is served by pushes (:class:`LogFeed`)."""
        if after is not None:
            self.stats.resumes += 1
        feed = LogFeed(self.log, stream, after, self.stats)
        return self.response(feed, headers, open_timeout=0)

    def response(
        self,
        events: AsyncIterable[ServerSentEvent | bytes | str],
        headers: Mapping[str, str] | None = None,
        *,
        open_timeout: float = DEFAULT_OPEN_TIMEOUT,
    ) -> Response:
        """An SSE response sending ``events`` with this host's ping, send timeout and
        supervisor (drained with a ``reconnect`` event at shutdown). ``events`` is closed
        when the response ends, however it ends. ``open_timeout`` (seconds): how long the
        head waits for a first event (a failure before it is an HTTP error); ``0`` for a
        stream the route already checked: the head leaves after the iterator's first step."""
        return EventSourceResponse(
            events,
            headers=dict(headers or {}),
            ping=self.ping,
            send_timeout=self.send_timeout,
            supervisor=self.supervisor,
            open_timeout=open_timeout,
        )

    async def reader(
        self, request: Request, stream: str, *, info: StreamInfo | None = None
    ) -> Response:
        """The generic reader route: 404 JSON for an unknown stream, 204 for a finished stream
        the client has read to the end (so ``EventSource`` stops reconnecting), else SSE.
        ``info``: the stream's info if the caller just read it (else it is read here)."""
        after = requested_after(request)
        if info is None:
            info = await self.log.info(stream)
        if info is None:
            return JSONResponse(error_body(404, f"no stream {stream!r}"), status_code=404)
        if info.state is not StreamState.OPEN and after is not None and after == info.last_id:
            return Response(status_code=204)
        return self.sse(request, stream, after, {"X-Stream-Id": stream})

    async def start(
        self,
        stream: str,
        producer: AsyncIterator[LogEntry],
        *,
        background: bool,
        grace_period: float | None = None,
        closing: Closing | None = None,
        on_end: OnEnd | None = None,
    ) -> None:
        """Run ``producer`` as the owner of ``stream``, with the runner's ``closing`` and
        ``on_end`` hooks (see :class:`ProducerRunner`)."""
        await self.producers.start(
            stream,
            producer,
            background=background,
            grace_period=grace_period,
            closing=closing,
            on_end=on_end,
        )

    async def cancel(self, stream: str) -> bool:
        """Stop ``stream``'s producer on whichever instance runs it."""
        return await self.producers.cancel(stream)

    async def aclose(self) -> None:
        """Cancel and await this instance's producers (the log is closed by its owner)."""
        await self.producers.aclose()
