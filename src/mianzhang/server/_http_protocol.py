"""uvicorn's httptools protocol with the request-head limits uvicorn lacks (slowloris defence),
offering streams their transport (the ASGI extension ``"mianzhang.transport"``).

uvicorn limits nothing in a request's head: a client may send endless headers, or one header
byte every few seconds and hold a connection forever. :func:`guarded_protocol` returns a
subclass that refuses, with a JSON body (``{"error": {"message", "type", "param", "code"}}``)
and ``Connection: close``:

* ``408`` when the head (request line and headers) is not complete ``header_timeout`` seconds
  after its first byte, or after the connection opened;
* ``414`` when the request target (path and query) is longer than ``max_request_line``;
* ``431`` when the head is larger than ``max_header_bytes`` or has more than
  ``max_header_count`` header fields;
* ``400`` for bytes that are not HTTP/1.1 (uvicorn answers text), ``503`` over the connection
  cap (uvicorn's ``limit_concurrency``, answered with text by uvicorn).

The limits hold however the head is cut into reads: the bytes of a head are handed to the
parser in pieces no longer than what the byte limit still allows, so a head that arrives in
one read is measured exactly as one that trickles in byte by byte; the request line and the
header count are checked by the parser's callbacks as each piece is parsed. A head that
exceeds a limit never reaches the application. (One leniency: a pipelined request's head that
arrives in the same read as the end of the previous request's body is held to the limits once
its headers are complete, and buffered up to that read's size before.)

After a size refusal the connection lingers (at most ``LINGER`` seconds, reading and
discarding), so the client can read the answer instead of a reset for the bytes it was still
sending. Bodies get their deadline in the ASGI layer (``_middleware.BodyDeadline``).

Every request's scope carries ``scope["extensions"]["mianzhang.transport"]["transport"]``, the
connection's :class:`~mianzhang._responses._transport.SocketTransport` (made when the
connection opens, forgotten when it is lost): streaming responses set its kernel send buffer
to ``stream_send_buffer`` and its unsent bytes to ``stream_unsent_limit``, watch what the peer
acknowledges and reset the connection when they cut a reader (see
``mianzhang._responses._transport``). :class:`HttpProtocol` is this protocol
with the default limits, for plain uvicorn:
``uvicorn app:app --http mianzhang.server:HttpProtocol``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .._responses._transport import (
    DEFAULT_STREAM_SEND_BUFFER,
    DEFAULT_STREAM_UNSENT_LIMIT,
    TRANSPORT_EXTENSION,
    SocketTransport,
)
from ._light_event import lighten

if TYPE_CHECKING:
    from ._settings import Settings

__all__ = ["LINGER", "HttpProtocol", "guarded_protocol"]

LINGER = 2.0
"""Seconds a refused connection keeps reading (and discarding) before it closes."""


_KINDS = {
    400: ("InvalidRequest", "invalid_request"),
    408: ("RequestTimeout", "request_timeout"),
    414: ("URITooLong", "uri_too_long"),
    431: ("HeaderFieldsTooLarge", "header_fields_too_large"),
    503: ("Overloaded", "overloaded"),
}


@dataclass(frozen=True, slots=True)
class _Refusal:
    """An answer given by the protocol itself, before any application code runs."""

    status: int
    message: str
    linger: bool = True

    def response(self, default_headers: list[tuple[bytes, bytes]]) -> bytes:
        """The whole HTTP/1.1 response: status line, headers, JSON body (the app's error
        shape: ``{"error": {"message", "type", "param", "code"}}``)."""
        kind, code = _KINDS[self.status]
        error = {"message": self.message, "type": kind, "param": None, "code": code}
        body = orjson.dumps({"error": error})
        head = [STATUS_LINE[self.status]]
        head += [name + b": " + value + b"\r\n" for name, value in default_headers]
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: %d\r\n" % len(body))
        if self.status == 503:
            head.append(b"retry-after: 1\r\n")
        head.append(b"connection: close\r\n\r\n")
        return b"".join(head) + body


class _Connection:
    """The guarded protocol's own state of one connection."""

    __slots__ = (
        "field_bytes",
        "field_count",
        "head_bytes",
        "header_timer",
        "in_head",
        "linger_timer",
        "offered",
        "refusal",
        "refused",
        "transport",
    )

    def __init__(self) -> None:
        self.transport: SocketTransport | None = None  # the connection's, offered to streams
        self.offered: dict[object, object] | None = None  # the extension: {"transport": ...}
        self.header_timer: asyncio.TimerHandle | None = None
        self.linger_timer: asyncio.TimerHandle | None = None
        self.in_head = True  # reading a head (or waiting for one), not a body
        self.head_bytes = 0  # raw bytes of the current head handed to the parser
        self.field_count = 0
        self.field_bytes = 0  # the parsed header fields, as "name: value\r\n"
        self.refusal: _Refusal | None = None
        self.refused = False


class _Guarded(HttpToolsProtocol):
    header_timeout: float = 10.0
    max_header_bytes: int = 16 * 1024
    max_header_count: int = 100
    max_request_line: int = 8 * 1024
    stream_send_buffer: int = DEFAULT_STREAM_SEND_BUFFER
    stream_unsent_limit: int = DEFAULT_STREAM_UNSENT_LIMIT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # all of this protocol's own state in one attribute: uvicorn's protocol has 28, and
        # past 30 an instance's attribute dict stops sharing its keys (1.6 KB per connection)
        self._g = _Connection()

    # -- reading ----------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        """Hand ``data`` to uvicorn's parser, a head in pieces the byte limit still allows;
        refuse as soon as a limit is exceeded."""
        while data and not self._g.refused:
            piece, data = self._next_piece(data)
            super().data_received(piece)
            if self._g.refused or self.transport.get_protocol() is not self:
                return  # uvicorn refused bytes that are not HTTP, or upgraded to WebSocket
            if (
                self._g.refusal is None
                and self._g.in_head
                and self._g.head_bytes > self.max_header_bytes
            ):
                self._g.refusal = self._head_too_large()
            if self._g.refusal is not None:
                self._refuse(self._g.refusal)

    def _head_too_large(self) -> _Refusal:
        return _Refusal(431, f"the request head is larger than {self.max_header_bytes} bytes")

    def _next_piece(self, data: bytes) -> tuple[bytes, bytes]:
        """The next bytes to parse: in a head, at most one byte more than the limit allows
        (enough to see it exceeded); in a body, everything."""
        if not self._g.in_head:
            return data, b""
        room = max(self.max_header_bytes - self._g.head_bytes, 0) + 1
        piece = data[:room]
        self._g.head_bytes += len(piece)
        return piece, data[room:]

    # -- parser callbacks: no-ops once a refusal is pending ----------------------------------
    def on_message_begin(self) -> None:
        if self._g.refusal is not None:
            return
        super().on_message_begin()
        if self._g.offered is not None:  # (next to any extension uvicorn may offer one day)
            self.scope.setdefault("extensions", {})[TRANSPORT_EXTENSION] = self._g.offered
        self._g.field_count = 0
        self._g.field_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        if self._g.refusal is not None:
            return
        super().on_url(url)
        if len(self.url) > self.max_request_line:
            self._g.refusal = _Refusal(
                414,
                f"the request target is longer than {self.max_request_line} bytes",
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._g.refusal is not None:
            return
        self._g.field_count += 1
        self._g.field_bytes += len(name) + len(value) + 4
        if self._g.field_count > self.max_header_count:
            self._g.refusal = _Refusal(431, f"more than {self.max_header_count} header fields")
        elif self._g.field_bytes + len(self.url) > self.max_header_bytes:
            self._g.refusal = self._head_too_large()
        else:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._g.refusal is not None:
            return
        if self._over_connection_cap():
            self._g.refusal = _Refusal(503, "too many open connections")
            return
        self._disarm()
        self._g.in_head = False
        super().on_headers_complete()
        cycle = self.cycle  # its task has not run yet: nothing waits on its event
        if cycle is not None:
            cycle.message_event = lighten(cycle.message_event)  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        if self._g.refusal is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._g.refusal is not None:
            return
        super().on_message_complete()
        self._g.in_head = True
        self._g.head_bytes = 0

    def _over_connection_cap(self) -> bool:
        """uvicorn's ``limit_concurrency`` check, answered here so the 503 is JSON too."""
        cap = self.limit_concurrency
        return cap is not None and (len(self.connections) >= cap or len(self.tasks) >= cap)

    # -- the header deadline -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        flow = self.flow  # made just now: nothing waits on its event
        flow._is_writable_event = lighten(flow._is_writable_event)  # type: ignore[assignment]
        self._g.transport = SocketTransport(
            transport, self.stream_send_buffer, self.stream_unsent_limit, self
        )
        self._g.offered = {"transport": self._g.transport}
        self._arm()

    # -- direct body writes (``_transport.BodyWriter``) ---------------------------------------
    def body_target(self, send: Any) -> object | None:
        """The current response, if ``send`` is its ``send``."""
        cycle = self.cycle
        return cycle if cycle is not None and send == cycle.send else None

    def write_body(self, target: object, data: bytes) -> bool:
        """``data`` as the next chunk of ``target``'s body, written now, exactly as uvicorn's
        ``send`` would write it (``RequestResponseCycle.send``: the same in uvicorn 0.35, the
        oldest this project allows, and 0.55, both read): only while ``target`` is the
        current response, started, chunked, not complete, its peer connected and the
        transport neither closing nor paused (a paused transport makes uvicorn's ``send``
        wait: that is the ASGI path's to do)."""
        cycle = self.cycle
        if (
            cycle is not target
            or cycle is None
            or self.flow.write_paused
            or cycle.disconnected
            or self.transport.is_closing()  # aborted (a cut), its loss not yet reported
            or not cycle.response_started
            or cycle.response_complete
            or not cycle.chunked_encoding
        ):
            return False
        self.transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        return True

    def _arm(self) -> None:
        if self._g.header_timer is None:
            self._g.header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._g.header_timer is not None:
            self._g.header_timer.cancel()
            self._g.header_timer = None

    def _too_slow(self) -> None:
        self._g.header_timer = None
        if self._g.in_head and not self._g.refused:
            self.logger.info("request head incomplete after %.1fs: 408", self.header_timeout)
            message = f"the request head was not complete within {self.header_timeout:g}s"
            self._refuse(_Refusal(408, message, linger=False))

    # -- refusing ----------------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are not HTTP, as JSON."""
        self._refuse(_Refusal(400, msg))

    def _refuse(self, refusal: _Refusal) -> None:
        """Answer ``refusal`` and close: at once, or after reading what the client still
        sends for at most :data:`LINGER` seconds (its answer is not lost to a reset)."""
        self._g.refused = True
        self._disarm()
        if refusal.status != 408:
            self.logger.info("request refused: %d %s", refusal.status, refusal.message)
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(refusal.response(self.server_state.default_headers))
        if refusal.linger and transport.can_write_eof():
            transport.write_eof()
            self._g.linger_timer = self.loop.call_later(LINGER, transport.close)
        else:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._g.transport is not None:
            self._g.transport.connection_lost()
        self._disarm()
        if self._g.linger_timer is not None:
            self._g.linger_timer.cancel()
            self._g.linger_timer = None
        super().connection_lost(exc)


def guarded_protocol(settings: Settings) -> type[HttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with the limits of ``settings``
    (``header_timeout``, ``max_header_bytes``, ``max_header_count``, ``max_request_line``)."""
    return type(
        "GuardedHttpToolsProtocol",
        (_Guarded,),
        {
            "header_timeout": settings.header_timeout,
            "max_header_bytes": settings.max_header_bytes,
            "max_header_count": settings.max_header_count,
            "max_request_line": settings.max_request_line,
            "stream_send_buffer": settings.stream_send_buffer,
            "stream_unsent_limit": settings.stream_unsent_limit,
        },
    )


class HttpProtocol(_Guarded):
    """The protocol of ``mianzhang serve`` with the default limits and stream send buffer,
    for plain uvicorn: ``uvicorn app:app --http mianzhang.server:HttpProtocol`` (streams cut
    for a slow reader are reset at once; see the module docstring)."""
