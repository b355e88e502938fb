"""uvicorn's httptools protocol with the deadlines uvicorn lacks (slowloris defence).

uvicorn cuts nothing while request bytes trickle in: a client sending one header byte every
few seconds holds a connection forever. :func:`guarded_protocol` returns a subclass that

* answers ``408`` and closes when a request's headers are not complete ``header_timeout``
  seconds after its first byte (or after the connection opened);
* answers ``431`` and closes when the headers grow past ``max_header_bytes``.

Bodies get their deadline in the ASGI layer (``_middleware.BodyDeadline``). The connection
cap is uvicorn's own ``limit_concurrency`` (answered with 503).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["guarded_protocol"]

_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n"
    b"connection: close\r\n\r\n"
)


class _Guarded(HttpToolsProtocol):
    header_timeout: float = 10.0
    max_header_bytes: int = 16 * 1024

    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes: int = 0
    _in_headers: bool = True

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._in_headers = True
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _refuse(self, response: bytes) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()

    def _too_slow(self) -> None:
        self._header_timer = None
        if self._in_headers:
            self.logger.info("request headers incomplete after %.1fs: 408", self.header_timeout)
            self._refuse(_408)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._in_headers and self._header_bytes > self.max_header_bytes:
            self._refuse(_431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def guarded_protocol(header_timeout: float, max_header_bytes: int) -> type[HttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these limits."""
    return type(
        "GuardedHttpToolsProtocol",
        (_Guarded,),
        {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes},
    )
