"""Keep-alive HTTP/1.1 connections to one upstream origin, and sending requests on them.

* At most ``max_connections`` open at once (idle ones included); a request that finds none
  free waits up to ``connect_timeout`` for one.
* Reuse: a connection goes back to the pool only when its response was read to the end, the
  upstream allowed keep-alive and nothing went wrong. A response closed early (abandoned
  mid-body), a cancelled wait, or any error closes the connection at once, so the upstream
  sees the disconnect and no half-read response is ever handed to the next request. Idle
  connections close after ``keepalive_expiry`` seconds (a timer, not a task) or as soon as
  the upstream closes them.
* A request sent on a *reused* connection that the upstream had closed meanwhile (it closed
  before answering a single byte: the keep-alive race) is sent once more on a new connection.

Parsing is :mod:`._upstream_connection`'s, connecting (TCP, TLS) :mod:`._upstream_connect`'s,
request heads :mod:`._upstream_request`'s.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping

from .._errors import UpstreamConnectError, UpstreamError, UpstreamTimeout
from ._upstream_connect import default_ssl_context, open_connection
from ._upstream_connection import UpstreamConnection
from ._upstream_request import UpstreamTarget
from ._upstream_response import UpstreamResponse

__all__ = ["UpstreamPool"]


async def _response_head(conn: UpstreamConnection) -> UpstreamError | None:
    """Wait until ``conn`` has the response's status and headers (``None``) or failed (the
    error)."""
    while not conn.headers_done:
        if conn.error is not None:
            return conn.error
        await conn.wait()
    return None


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
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._target = UpstreamTarget(base_url, headers)
        self.url = self._target.url
        self.host = self._target.host
        self.port = self._target.port
        self._ssl = (ssl_context or default_ssl_context()) if self._target.tls else None
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self.connect_timeout = connect_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: deque[UpstreamConnection] = deque()
        self._conns: set[UpstreamConnection] = set()
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections currently open (idle or in use)."""
        return len(self._conns)

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

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
        await self._acquire(slots)
        try:
            return await self._exchange(self._target.head(method, path, len(body)) + body)
        except BaseException:
            slots.release()
            raise

    async def _acquire(self, slots: asyncio.Semaphore) -> None:
        """A connection slot, waiting up to ``connect_timeout`` when none is free."""
        if not slots.locked():
            await slots.acquire()  # a free slot: returns without suspending
            return
        try:
            async with asyncio.timeout(self.connect_timeout):
                await slots.acquire()
        except TimeoutError:
            raise UpstreamTimeout(
                f"upstream {self.url}: no free connection within {self.connect_timeout}s"
                f" (max_connections={self.max_connections})"
            ) from None

    async def _exchange(self, data: bytes) -> UpstreamResponse:
        """Send ``data`` on the warmest idle connection (else a new one) and wait for the
        response head; a reused connection the upstream closed unanswered is replaced."""
        while True:
            conn = self._take_idle()
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            conn.send(data)
            error = await _response_head(conn)
            if error is None:
                return UpstreamResponse(conn, self._release)
            conn.abort()
            self._forget(conn)
            if reused and not conn.received_any and isinstance(error, UpstreamConnectError):
                continue  # the keep-alive race: the upstream closed it while it was idle
            raise error

    def _take_idle(self) -> UpstreamConnection | None:
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

    async def _connect(self) -> UpstreamConnection:
        conn = await open_connection(
            self._target, self._forget, ssl_context=self._ssl, connect_timeout=self.connect_timeout
        )
        self._conns.add(conn)
        return conn

    def _release(self, conn: UpstreamConnection) -> None:
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

    def _forget(self, conn: UpstreamConnection) -> None:
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
