"""One HTTP/1.1 connection to an upstream: an asyncio protocol parsing the response to the
request in flight with httptools' C parser. No pooling (:mod:`._upstream_pool`), no
connecting (:mod:`._upstream_connect`).

One request at a time: :meth:`UpstreamConnection.send` writes a whole request and starts a
fresh parser; the parser's callbacks fill the status, headers and body, and wake the single
reader waiting in :meth:`UpstreamConnection.wait`. Body framings: ``Content-Length``,
chunked, or delimited by the connection closing. Interim responses (100, 103) are skipped.
Flow control: past 256 KiB of unread body the socket stops being read until the reader takes
it. Failures are recorded (the first one wins) as the gateway's errors:
:class:`UpstreamConnectError` when the upstream closed before answering,
:class:`UpstreamProtocolError` for malformed HTTP, a protocol switch or a body broken off.
Bytes arriving while no request is in flight make the connection untrustworthy: it is aborted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Final, cast

import httptools

from .._errors import UpstreamConnectError, UpstreamError, UpstreamProtocolError

__all__ = ["UpstreamConnection"]

_HIGH_WATER: Final = 256 * 1024  # body bytes buffered before the socket stops being read


class UpstreamConnection(asyncio.Protocol):
    """One TCP (or TLS) connection; parses the response to the request in flight.

    Parser callbacks (``on_*``) fill the response state; the single reader waits on
    ``waiter``, woken by every callback that changes what it may read. ``url`` names the
    upstream in error messages; ``on_lost(connection)`` is called once the connection is gone.
    """

    def __init__(self, url: str, on_lost: Callable[[UpstreamConnection], None]) -> None:
        self.url = url
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        self.parser: httptools.HttpResponseParser | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.close_delimited = False
        self.received_any = False
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.error: UpstreamError | None = None
        self.waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:  # bytes while idle: the connection cannot be trusted any more
            self.abort()
            return
        self.received_any = True
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError(f"upstream {self.url} switched protocols"))
            self.abort()
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"upstream {self.url} sent malformed HTTP: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._on_lost(self)
        if self.parser is None or self.complete:
            return
        if self.headers_done and self.close_delimited and exc is None:
            self.complete = True  # the body ends where the connection does
            self.keep_alive = False
            self._wake()
            return
        reason = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        if not self.headers_done:
            self._fail(
                UpstreamConnectError(
                    f"upstream {self.url} closed the connection before answering{reason}"
                )
            )
        else:
            self._fail(UpstreamProtocolError(f"upstream {self.url} broke off the body{reason}"))

    # -- httptools callbacks ------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.status = 0
        self.headers = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self.headers.get(key)
        self.headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        status = self.parser.get_status_code()
        if status < 200:  # interim (100, 103): the real response follows
            return
        self.status = status
        self.headers_done = True
        self.close_delimited = (
            status not in (204, 304)
            and "content-length" not in self.headers
            and "chunked" not in self.headers.get("transfer-encoding", "").lower()
        )
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.headers_done:  # the end of an interim response
            return
        assert self.parser is not None
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive() and not self.close_delimited
        self._wake()

    # -- used by the pool and the response ---------------------------------------------------
    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def send(self, data: bytes) -> None:
        """Start a request: a fresh parser, then the whole request in one write."""
        self._reset()
        self.parser = httptools.HttpResponseParser(self)
        assert self.transport is not None
        self.transport.write(data)

    async def wait(self) -> None:
        """Wait for the next parser event; a cancelled wait closes the connection."""
        waiter = asyncio.get_running_loop().create_future()
        self.waiter = waiter
        try:
            await waiter
        except BaseException:
            self.abort()
            raise
        finally:
            self.waiter = None

    def usable(self) -> bool:
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    def take_body(self) -> bytes:
        body = self.body
        data = body.popleft() if len(body) == 1 else b"".join(body)
        body.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def abort(self) -> None:
        """Close now, without flushing or TLS close-notify: never reused."""
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close politely (pending writes flushed): an idle connection that expired."""
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.transport is not None:
            self.transport.close()
