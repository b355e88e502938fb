"""The sync SSE client: ``with connect_sync(url) as stream: for event in stream`` (mirrors
``_async.py`` line for line; the state machine is shared in ``_core.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, NoReturn

import httpx

from .._errors import ClientError, ResponseRejected
from .._sse import ServerSentEvent
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

__all__ = ["SyncEventStream", "connect_sync"]


class SyncEventStream(StreamView):
    """A resuming stream of server-sent events over one ``httpx.Client``: the blocking twin
    of :class:`~mianzhang.client.EventStream`, with the same guarantees.

    Made by :func:`connect_sync`; use it as a context manager and iterate it. Leaving the
    ``with`` block (normally or by an exception, ``KeyboardInterrupt`` included) closes the
    response and, if the stream created it, the client. Not thread-safe: one thread per stream.
    """

    def __init__(
        self,
        options: Options,
        *,
        client: httpx.Client | None,
        sleep: Callable[[float], None],
    ) -> None:
        self._options = options
        self._core = Core.from_options(options)
        self._client = client
        self._owns_client = client is None
        self._sleep = sleep
        self._state = State.UNOPENED
        self._finished = False
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] | None = None
        self._reading = False

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> SyncEventStream:
        """Connect (retrying network errors like a reconnect); raise if the server refuses."""
        if self._state is not State.UNOPENED:
            raise RuntimeError("a SyncEventStream can be entered only once")
        self._state = State.OPEN
        try:
            if self._client is None:
                self._client = httpx.Client(follow_redirects=True)
            self._connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the response and the owned client. Idempotent."""
        self._state = State.CLOSED
        self._finished = True
        try:
            self._close_response()
        finally:
            client, self._client = self._client, None
            if client is not None and self._owns_client:
                client.close()

    # -- iteration -------------------------------------------------------------------------
    def __iter__(self) -> SyncEventStream:
        return self

    def __next__(self) -> ServerSentEvent:
        if self._state is State.UNOPENED:
            raise RuntimeError("use `with connect_sync(...) as stream:` before iterating")
        if self._state is State.CLOSED:
            raise StopIteration
        while True:
            event = self._core.pop()
            if event is not None:
                return event
            if self._finished:
                raise StopIteration
            if self._reading:  # the previous __next__ was interrupted mid-read
                self._end_connection(None)
                continue
            if self._chunks is None:
                try:
                    self._connect()
                except Exception:  # final: rejected, exhausted, a bad request; not cancellation
                    self._terminate()
                    raise
                continue
            self._reading = True
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._reading = False
                self._end_connection(None)
                continue
            except RETRYABLE as exc:
                self._reading = False
                self._end_connection(exc)
                continue
            except httpx.HTTPError as exc:
                self._reading = False
                self._fail(ClientError(f"reading the event stream failed: {exc}"), exc)
            self._reading = False
            try:
                reconnect = self._core.feed(chunk)
            except BaseException:
                self._terminate()
                raise
            if reconnect:
                self._end_connection(None)

    # -- internals -------------------------------------------------------------------------
    def _connect(self) -> None:
        """Attempt until a stream is open (``_chunks`` set) or the server said 204."""
        assert self._client is not None
        opts = self._options
        while True:
            delay = self._core.begin_attempt(opts.url)
            if delay is not None:
                self._sleep(delay)
            try:
                request = self._client.build_request(
                    opts.method,
                    opts.url,
                    params=opts.params,
                    headers=self._core.request_headers(opts.headers),
                    json=opts.json,
                    timeout=opts.timeout,
                )
                response = self._client.send(request, stream=True)
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
                self._chunks = response.iter_bytes()
                return
            if verdict == "done":
                response.close()
                self._finished = True
                return
            body = self._read_body(response)
            raise ResponseRejected(
                response.status_code, response.headers.get("content-type", ""), body
            )

    def _read_body(self, response: httpx.Response) -> bytes:
        limit = self._options.max_error_body
        body = bytearray()
        chunks = response.iter_bytes()
        try:
            for chunk in chunks:
                body += chunk[: limit - len(body)]
                if len(body) >= limit:
                    break
        except httpx.HTTPError:
            pass  # the status is the verdict; the body is a courtesy
        finally:
            _close_iter(chunks)
            response.close()
        return bytes(body)

    def _end_connection(self, error: BaseException | None) -> None:
        """Close the current response and account for it (may raise ReconnectExhausted)."""
        self._reading = False
        self._close_response()
        try:
            self._core.end_connection(error)
        except BaseException:
            self._terminate()
            raise

    def _fail(self, error: ClientError, cause: BaseException) -> NoReturn:
        self._terminate()
        raise error from cause

    def _terminate(self) -> None:
        self._finished = True
        self._close_response()

    def _close_response(self) -> None:
        chunks, self._chunks = self._chunks, None
        response, self._response = self._response, None
        try:
            if chunks is not None:
                _close_iter(chunks)
        finally:
            if response is not None:
                response.close()


def _close_iter(iterator: Iterator[bytes]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def connect_sync(
    url: httpx.URL | str,
    *,
    client: httpx.Client | None = None,
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
    sleep: Callable[[float], None] | None = None,
) -> SyncEventStream:
    """Open a resuming SSE stream: ``with connect_sync(url) as stream: for ev in stream``.

    The blocking twin of :func:`~mianzhang.client.connect`: the same arguments with the same
    meaning, over an ``httpx.Client`` (``client``, not closed by the stream; by default one is
    made with ``follow_redirects=True`` and closed on exit). ``sleep`` defaults to
    ``time.sleep``.
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
    return SyncEventStream(options, client=client, sleep=sleep or time.sleep)
