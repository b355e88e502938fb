"""A small HTTP/1.1 streaming client for LLM upstreams: asyncio protocols + httptools' C parser.

Why not httpx: for a streamed chat completion the gateway's CPU per token was mostly httpx and
h11 (pure-Python HTTP parsing). This client does one job, one request at a time per connection:

* :class:`UpstreamPool` — keep-alive connections to ONE origin (``http`` or ``https``; TLS with
  httpx's default CA bundle and SNI), at most ``max_connections`` open at once (a request waits
  up to ``connect_timeout`` for a free one), idle ones closed after ``keepalive_expiry``
  seconds (a timer, not a task) or as soon as the upstream closes them.
* :meth:`UpstreamPool.request` writes the request head and body in one ``write`` and returns
  an :class:`UpstreamResponse` once the status and headers are in. Its body is read with
  ``async for`` (``Content-Length``, chunked, or delimited by the connection closing).
* Reuse: a connection goes back to the pool only when its response was read to the end, the
  upstream allowed keep-alive and nothing went wrong. A response closed early (abandoned
  mid-body), a cancelled wait, or any error closes the connection at once, so the upstream
  sees the disconnect and no half-read response is ever handed to the next request.
* A request sent on a *reused* connection that the upstream had closed meanwhile (it closed
  before answering a single byte: the keep-alive race) is sent once more on a new connection.

Errors are the gateway's (:mod:`mianzhang._errors`): :class:`UpstreamConnectError` (connect,
TLS or send failed, or the upstream closed before answering), :class:`UpstreamTimeout` (no
connection within ``connect_timeout``), :class:`UpstreamProtocolError` (unparseable response,
or the connection broke off mid-body).

Not supported (callers use httpx for these): proxies, HTTP/2, ``HEAD`` requests, content
decoding (no ``accept-encoding`` is sent), upgrades, request bodies that are not bytes.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from typing import Final, cast
from urllib.parse import urlsplit

import httptools
import httpx

from .._errors import UpstreamConnectError, UpstreamError, UpstreamProtocolError, UpstreamTimeout

__all__ = ["UpstreamPool", "UpstreamResponse"]

_HIGH_WATER: Final = 256 * 1024  # body bytes buffered before the socket stops being read
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def default_ssl_context() -> ssl.SSLContext:
    """httpx's default verification (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), HTTP/1.1
    only (ALPN), so the fast client trusts exactly what the httpx path trusted."""
    ctx = httpx.create_ssl_context()
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; parses the response to the request in flight.

    Parser callbacks (``on_*``) fill the response state; the single reader waits on
    ``waiter``, woken by every callback that changes what it may read.
    """

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
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
            self._fail(UpstreamProtocolError(f"upstream {self.pool.url} switched protocols"))
            self.abort()
        except httptools.HttpParserError as exc:
            self._fail(
                UpstreamProtocolError(f"upstream {self.pool.url} sent malformed HTTP: {exc}")
            )
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.pool._forget(self)
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
                    f"upstream {self.pool.url} closed the connection before answering{reason}"
                )
            )
        else:
            self._fail(
                UpstreamProtocolError(f"upstream {self.pool.url} broke off the body{reason}")
            )

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

    # -- used by the pool and the response ----------------------------------------------------
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


class UpstreamResponse:
    """Status, headers and the streamed body of one response; ``async for`` yields the body
    as it arrives (never empty chunks) and ends at its end.

    Always :meth:`aclose` it (in ``finally``): a fully read keep-alive response returns its
    connection to the pool, anything else (abandoned, failed, cancelled) closes it. Reading
    raises :class:`UpstreamProtocolError` when the connection breaks off mid-body.
    """

    __slots__ = ("_conn", "_pool", "_released", "headers", "status")

    def __init__(self, pool: UpstreamPool, conn: _Connection) -> None:
        self._pool = pool
        self._conn = conn
        self._released = False
        self.status: int = conn.status
        self.headers: Mapping[str, str] = conn.headers  # names in lower case

    def __aiter__(self) -> UpstreamResponse:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        while True:
            if self._released:
                raise StopAsyncIteration
            if conn.body:
                return conn.take_body()
            if conn.complete:
                raise StopAsyncIteration
            if conn.error is not None:
                raise conn.error
            await conn.wait()

    @property
    def complete(self) -> bool:
        """Whether the whole body has been received (not necessarily read)."""
        return self._conn.complete

    async def aclose(self) -> None:
        """Give the connection back (fully read, keep-alive) or close it; idempotent."""
        if self._released:
            return
        self._released = True
        self._pool._release(self._conn)


class UpstreamPool:
    """Keep-alive HTTP/1.1 connections to the origin of ``base_url``; requests go to
    ``base_url``'s path + the request path, with ``headers`` on every request.

    At most ``max_connections`` connections exist at once (idle ones included); a request
    that finds none free waits for one up to ``connect_timeout`` (else
    :class:`UpstreamTimeout`). ``connect_timeout`` also bounds connecting (TCP and TLS).
    Reading is not bounded here: the caller's deadlines cancel reads, which closes the
    connection. :meth:`aclose` closes every connection, idle or in use.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 1000,
        keepalive_expiry: float = 30.0,
        connect_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"upstream URL must be http:// or https:// with a host: {base_url!r}")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self._ssl = (ssl_context or default_ssl_context()) if parts.scheme == "https" else None
        self._prefix = parts.path.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        if parts.port is not None and parts.port != _DEFAULT_PORTS[parts.scheme]:
            host = f"{host}:{parts.port}"
        merged = {"host": host, "user-agent": "mianzhang"}
        for name, value in (headers or {}).items():
            merged[name.lower()] = value
        merged.pop("content-length", None)
        merged.pop("transfer-encoding", None)
        lines = []
        for name, value in merged.items():
            if any(c in name + value for c in "\r\n\0") or not name or ":" in name:
                raise ValueError(f"invalid header {name!r}")
            lines.append(f"{name}: {value}\r\n")
        self._header_block = "".join(lines).encode("latin-1")
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self.connect_timeout = connect_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: deque[_Connection] = deque()
        self._conns: set[_Connection] = set()
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections currently open (idle or in use)."""
        return len(self._conns)

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    def _head(self, method: str, path: str, length: int) -> bytes:
        return (
            f"{method} {self._prefix}{path} HTTP/1.1\r\n".encode("latin-1")
            + self._header_block
            + f"content-length: {length}\r\n\r\n".encode("latin-1")
        )

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, or a new event loop: nothing old is usable
            for conn in list(self._conns):
                conn.abort()
            self._conns.clear()
            self._idle.clear()
            self._slots = asyncio.Semaphore(self.max_connections)
            self._loop = loop

    async def request(self, method: str, path: str, body: bytes = b"") -> UpstreamResponse:
        """Send ``method path`` with ``body``; return once the status and headers arrived.

        Cancelling this closes the connection it was using (never returned to the pool).
        """
        if self._closed:
            raise UpstreamConnectError(f"upstream {self.url}: the client is closed")
        self._bind_loop()
        slots = self._slots
        if slots.locked():
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await slots.acquire()
            except TimeoutError:
                raise UpstreamTimeout(
                    f"upstream {self.url}: no free connection within {self.connect_timeout}s"
                    f" (max_connections={self.max_connections})"
                ) from None
        else:
            await slots.acquire()  # a free slot: returns without suspending
        try:
            data = self._head(method, path, len(body)) + body
            while True:
                conn = self._take_idle()
                reused = conn is not None
                if conn is None:
                    conn = await self._connect()
                conn.send(data)
                while not conn.headers_done:
                    if conn.error is not None:
                        break
                    await conn.wait()
                if conn.headers_done:
                    return UpstreamResponse(self, conn)
                error = conn.error
                assert error is not None
                conn.abort()
                self._forget(conn)
                if reused and not conn.received_any and isinstance(error, UpstreamConnectError):
                    continue  # the keep-alive race: the upstream closed it while it was idle
                raise error
        except BaseException:
            slots.release()
            raise

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()  # the most recently used: warm, and lets the others expire
            if conn.idle_timer is not None:
                conn.idle_timer.cancel()
                conn.idle_timer = None
            if conn.usable():
                return conn
            conn.abort()
            self._forget(conn)
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None,
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"upstream {self.url}: connect timed out after {self.connect_timeout}s"
            ) from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError)
            raise UpstreamConnectError(
                f"upstream {self.url}: connect failed: {type(exc).__name__}: {exc}"
            ) from exc
        self._conns.add(conn)
        return conn

    def _release(self, conn: _Connection) -> None:
        try:
            if (
                conn.complete
                and conn.keep_alive
                and conn.error is None
                and conn.usable()
                and not self._closed
                and self._loop is asyncio.get_running_loop()
            ):
                conn.parser = None
                conn.idle_timer = self._loop.call_later(self.keepalive_expiry, conn.close)
                self._idle.append(conn)
            else:
                conn.abort()
                self._forget(conn)
        finally:
            self._slots.release()

    def _forget(self, conn: _Connection) -> None:
        self._conns.discard(conn)
        if conn.parser is None and conn in self._idle:  # idle: drop it from the idle stack
            self._idle.remove(conn)

    async def aclose(self) -> None:
        """Close every connection (in-use responses then fail); later requests are refused."""
        self._closed = True
        for conn in list(self._conns):
            conn.abort()
        self._conns.clear()
        self._idle.clear()
