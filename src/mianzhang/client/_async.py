"""The async SSE client: ``async with connect(url) as stream: async for event in stream``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, NoReturn

import anyio
import httpx

from .._errors import ClientError, ResponseRejected
from .._sse import ServerSentEvent
from .._tasks import AsyncResource
from ._backoff import Backoff
from ._core import (
    DEFAULT_MAX_ERROR_BODY,
    DEFAULT_MAX_EVENT_SIZE,
    DEFAULT_RETRY,
    RETRYABLE,
    Core,
    Options,
    State,
    StreamView,
)

__all__ = ["EventStream", "connect"]


class EventStream(StreamView, AsyncResource):
    """A resuming stream of server-sent events over one ``httpx.AsyncClient``.

    Made by :func:`connect`; use it as an async context manager and iterate it. Guarantees:

    * Events are yielded in the order the server sent them. Across reconnects nothing the
      client saw is asked for again: each reconnect sends ``Last-Event-ID`` (the id of the last
      dispatched event, UTF-8) when it is non-empty, and an id inside an event cut off before
      its blank line is never used. Whether events are *missed* is the server's promise (a
      mianzhang server replays them, or sends a ``reset`` event when it cannot).
    * Network errors, timeouts (``read_timeout``: no byte at all, not even a heartbeat
      comment, for that long) and a clean end of the response reconnect after the reconnection
      time (``retry``, replaced by the server's ``retry:`` at once), backed off with jitter
      after consecutive failures (:class:`Backoff`). ``max_reconnects`` failures in a row raise
      :class:`ReconnectExhausted`.
    * A non-200 status or a content type other than ``text/event-stream`` raises
      :class:`ResponseRejected` (status, content type, at most ``max_error_body`` bytes of the
      body) and is never retried. 204 No Content ends the iteration cleanly: the server says
      there is nothing more.
    * An event larger than ``max_event_size`` characters raises :class:`EventTooLarge` and
      ends the stream (no reconnect loop on a stream that would fail again).
    * ``event: reset`` is yielded as a :class:`ResetEvent`. ``event: reconnect`` is not
      yielded: the client closes the connection at once and reconnects after the reconnection
      time (normally the ``retry:`` sent with it), without counting it as a failure.
    * Leaving the ``async with`` (normally, by an exception or by cancellation) closes the
      response and, if the stream created it, the client. No task is ever started. An
      ``__anext__`` cancelled while reading loses nothing: the next one reconnects from
      ``last_event_id``.

    Not safe for concurrent use by several tasks.
    """

    def __init__(
        self,
        options: Options,
        *,
        client: httpx.AsyncClient | None,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._options = options
        self._core = Core.from_options(options)
        self._client = client
        self._owns_client = client is None
        self._sleep = sleep
        self._state = State.UNOPENED
        self._finished = False
        self._response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._reading = False

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> EventStream:
        """Connect (retrying network errors like a reconnect); raise if the server refuses."""
        if self._state is not State.UNOPENED:
            raise RuntimeError("an EventStream can be entered only once")
        self._state = State.OPEN
        try:
            if self._client is None:
                self._client = httpx.AsyncClient(follow_redirects=True)
            await self._connect()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def aclose(self) -> None:
        """Close the response and the owned client. Idempotent."""
        self._state = State.CLOSED
        self._finished = True
        try:
            await self._close_response()
        finally:
            client, self._client = self._client, None
            if client is not None and self._owns_client:
                await client.aclose()

    # -- iteration -------------------------------------------------------------------------
    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> ServerSentEvent:
        if self._state is State.UNOPENED:
            raise RuntimeError("use `async with connect(...) as stream:` before iterating")
        if self._state is State.CLOSED:
            raise StopAsyncIteration
        while True:
            event = self._core.pop()
            if event is not None:
                return event
            if self._finished:
                raise StopAsyncIteration
            if self._reading:  # the previous __anext__ was cancelled mid-read
                await self._end_connection(None)
                continue
            if self._chunks is None:
                try:
                    await self._connect()
                except Exception:  # final: rejected, exhausted, a bad request; not cancellation
                    await self._terminate()
                    raise
                continue
            self._reading = True
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._reading = False
                await self._end_connection(None)
                continue
            except RETRYABLE as exc:
                self._reading = False
                await self._end_connection(exc)
                continue
            except httpx.HTTPError as exc:
                self._reading = False
                await self._fail(ClientError(f"reading the event stream failed: {exc}"), exc)
            self._reading = False
            try:
                reconnect = self._core.feed(chunk)
            except BaseException:
                await self._terminate()
                raise
            if reconnect:
                await self._end_connection(None)

    # -- internals -------------------------------------------------------------------------
    async def _connect(self) -> None:
        """Attempt until a stream is open (``_chunks`` set) or the server said 204."""
        assert self._client is not None
        opts = self._options
        while True:
            delay = self._core.begin_attempt(opts.url)
            if delay is not None:
                await self._sleep(delay)
            try:
                request = self._client.build_request(
                    opts.method,
                    opts.url,
                    params=opts.params,
                    headers=self._core.request_headers(opts.headers),
                    json=opts.json,
                    timeout=opts.timeout,
                )
                response = await self._client.send(request, stream=True)
            except RETRYABLE as exc:
                self._core.end_connection(exc)
                continue
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise ClientError(f"cannot request {opts.url}: {exc}") from exc
            verdict = self._core.classify(
                response.status_code, response.headers.get("content-type", "")
            )
            if verdict == "open":
                self._response = response
                self._chunks = response.aiter_bytes()
                return
            if verdict == "done":
                await response.aclose()
                self._finished = True
                return
            body = await self._read_body(response)
            raise ResponseRejected(
                response.status_code, response.headers.get("content-type", ""), body
            )

    async def _read_body(self, response: httpx.Response) -> bytes:
        limit = self._options.max_error_body
        body = bytearray()
        chunks = response.aiter_bytes()
        try:
            async for chunk in chunks:
                body += chunk[: limit - len(body)]
                if len(body) >= limit:
                    break
        except httpx.HTTPError:
            pass  # the status is the verdict; the body is a courtesy
        finally:
            await _aclose_iter(chunks)
            await response.aclose()
        return bytes(body)

    async def _end_connection(self, error: BaseException | None) -> None:
        """Close the current response and account for it (may raise ReconnectExhausted)."""
        self._reading = False
        await self._close_response()
        try:
            self._core.end_connection(error)
        except BaseException:
            await self._terminate()
            raise

    async def _fail(self, error: ClientError, cause: BaseException) -> NoReturn:
        await self._terminate()
        raise error from cause

    async def _terminate(self) -> None:
        self._finished = True
        await self._close_response()

    async def _close_response(self) -> None:
        chunks, self._chunks = self._chunks, None
        response, self._response = self._response, None
        try:
            if chunks is not None:
                await _aclose_iter(chunks)
        finally:
            if response is not None:
                await response.aclose()


async def _aclose_iter(iterator: AsyncIterator[bytes]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


def connect(
    url: httpx.URL | str,
    *,
    client: httpx.AsyncClient | None = None,
    method: str = "GET",
    params: Any = None,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    last_event_id: str | None = None,
    retry: int = DEFAULT_RETRY,
    backoff: Backoff | None = None,
    max_reconnects: int | None = None,
    read_timeout: float | None = 60.0,
    connect_timeout: float = 10.0,
    max_event_size: int | None = DEFAULT_MAX_EVENT_SIZE,
    max_error_body: int = DEFAULT_MAX_ERROR_BODY,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> EventStream:
    """Open a resuming SSE stream, like a browser's ``EventSource`` (see :class:`EventStream`).

    * ``client``: an ``httpx.AsyncClient``, not closed by the stream (default: its own, with
      ``follow_redirects=True`` like a browser). ``sleep`` waits between attempts (default
      ``anyio.sleep``; tests inject one to observe or skip the delays).
    * ``method``, ``params``, ``headers``, ``json``: the request, sent again on each reconnect
      (``Accept``, ``Cache-Control`` and ``Last-Event-ID`` are the stream's own).
    * ``last_event_id``: resume after this id from the first request on. ``retry``: the first
      reconnection time in **milliseconds** (SSE's unit, 3000 as in browsers), grown by
      ``backoff`` after failed attempts; ``max_reconnects``: failed attempts (no event) in a
      row before :class:`ReconnectExhausted` (``None``: never give up; ``0``: the first raises).
    * ``read_timeout`` (s): no byte for this long, not even a heartbeat, and the connection is
      replaced (``None``: wait forever; keep it above the server's heartbeat, 15 s here).
    * ``max_event_size``: characters an event may reach before :class:`EventTooLarge`;
      ``max_error_body``: bytes of a refused response's body kept in :class:`ResponseRejected`.
    """
    options = Options(
        url=url,
        method=method,
        params=params,
        headers=headers,
        json=json,
        last_event_id=last_event_id,
        retry=retry,
        backoff=backoff,
        max_reconnects=max_reconnects,
        read_timeout=read_timeout,
        connect_timeout=connect_timeout,
        max_event_size=max_event_size,
        max_error_body=max_error_body,
    )
    return EventStream(options, client=client, sleep=sleep or anyio.sleep)
