"""The connection under a response: an ASGI scope extension a server may offer a stream.

ASGI gives an application ``send`` and nothing else about the connection: a stream that stops
cannot tell the server "reset this connection, the peer stopped reading", and a stream cannot
tell whether the bytes it sent were taken by the peer or are only waiting in the kernel. A
server that can answer offers the ASGI extension ``"mianzhang.transport"``, whose dict holds
under ``"transport"`` an object with the :class:`StreamTransport` methods
(``scope["extensions"]["mianzhang.transport"]["transport"]``); the engine uses it when present:

* on ``send_timeout``, and on any server-side end that is not a clean finish while the peer
  has bytes it did not acknowledge, the engine calls :meth:`~StreamTransport.abort`: the
  connection is reset (RST) at once, its descriptor and buffers released, instead of a FIN
  queued behind data the peer will never read;
* at its start a stream sets the kernel send buffer to the server's
  :attr:`~StreamTransport.stream_send_buffer`, bounding what a stalled reader pins there, and
  limits the bytes the connection holds *unsent* to :attr:`~StreamTransport.stream_unsent_limit`
  (:meth:`~StreamTransport.limit_unsent`): a reader that stops reading makes the next sends
  block after its own receive window and that limit, so it stops costing writes (and is
  seen as congested) within a few events, not after the whole send buffer filled;
* a watchdog (``_watchdog``) reads :meth:`~StreamTransport.acknowledged_bytes` while bytes
  are unacknowledged and cuts a stream whose peer acknowledged nothing for ``send_timeout``,
  also when the kernel took every byte (no ``send`` ever blocks).

``mianzhang serve`` offers it (its uvicorn protocol); plain uvicorn gets it with
``--http mianzhang.server:HttpProtocol``. Without it (other servers, uvicorn's own protocols)
a stream still ends on a blocked ``send``, frees its iterator and buffer, and returns without
completing the body; the server then closes the connection its own way (uvicorn: ``close()``,
which keeps the socket until its write buffer drains, i.e. as long as the peer does not read),
and a stall the kernel absorbs is seen only once its buffer is full and a ``send`` blocks.

:class:`SocketTransport` is the implementation over an ``asyncio`` transport and its socket:
Linux's ``SIOCOUTQ`` and ``TCP_INFO`` (``tcpi_bytes_acked``); elsewhere (and on Unix sockets)
only the transport's own buffer is counted and :meth:`~SocketTransport.acknowledged_bytes` is
``None`` (no watchdog: a stall is seen when a ``send`` blocks).

A transport may also offer ``on_lost(callback)`` (:class:`SocketTransport` does): the callback
is called once when the connection is lost. A stream then learns that its peer went away from
the server itself and needs no task waiting on ``receive()`` for ``http.disconnect`` (one
task, its coroutines and futures less per idle stream).

**Direct body writes.** A transport may offer ``body_target(send)`` and
``write_body(target, data)`` (:class:`SocketTransport` does when its server gives it a
:class:`BodyWriter`): the bytes a live source pushes to a caught-up reader are written to the
connection at once, framed as the server would frame them, instead of going through ASGI
``send`` from outside the stream's task. A fan-out to 10,000 readers then costs what a raw
ASGI app writing one pre-encoded message per subscriber costs (measured, ``bench/fanout.py``
at 10,000 subscribers, three repeats: 11.1 µs of server CPU per delivery, raw ASGI's 11.1;
through ``send`` it was 12.7 against raw's 9.7). :func:`direct_body` allows
it only where nothing can change the body on its way: the ``send`` the response was given
must be the server's own, or reach it through wrappers that declare they pass body messages
unchanged (a bound method of an object with a ``passthrough_send`` attribute, the ``send`` it
wraps, and a ``body_written(size)`` method told of the bytes written around it, for its
accounting). Anything else (an unknown middleware, a compressor, a server without the method)
keeps the ASGI path. ``write_body`` writes only when the server's ``send`` would write at once
(the response started, its body open and chunked, the connection not paused and not lost) and
otherwise answers False: the bytes then take the ASGI path, which waits as it always did.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from starlette.types import Scope

__all__ = [
    "DEFAULT_STREAM_SEND_BUFFER",
    "DEFAULT_STREAM_UNSENT_LIMIT",
    "TRANSPORT_EXTENSION",
    "BodyWriter",
    "DirectBody",
    "SocketTransport",
    "StreamTransport",
    "direct_body",
    "transport_of",
]

TRANSPORT_EXTENSION = "mianzhang.transport"
"""Name of the ASGI extension (in ``scope["extensions"]``) whose ``"transport"`` is the
:class:`StreamTransport` of the request's connection."""

DEFAULT_STREAM_SEND_BUFFER = 128 * 1024
"""Kernel send buffer (``SO_SNDBUF``) of a streaming connection, in bytes. Linux doubles it for
its bookkeeping: a stalled reader pins at most 256 KiB of kernel memory (about 190 KB of
data), and a reader 100 ms away still gets over 1 MB/s."""

DEFAULT_STREAM_UNSENT_LIMIT = 1024
"""Bytes a streaming connection may hold written but not yet sent (``TCP_NOTSENT_LOWAT``), and
the server's write buffer high-water mark: what a reader does not take waits in the stream's
own buffer, where it is coalesced into one write, instead of in the kernel. Bytes in flight
(sent, not yet acknowledged) are bounded by the send buffer alone, so a distant fast reader's
throughput is unchanged. Measured: ``tests/e2e/test_responses_cut.py`` (a stalled reader costs
writes for about 14 events instead of about 300)."""

_SIOCOUTQ = 0x5411  # Linux: bytes in the send queue not yet acknowledged (= TIOCOUTQ)
if sys.platform == "linux":
    from fcntl import ioctl as _ioctl

    _TCP_INFO: int | None = socket.TCP_INFO
else:  # the kernel's queue and acknowledgements are read on Linux only
    _ioctl = None
    _TCP_INFO = None
_TCP_NOTSENT_LOWAT: int | None = getattr(socket, "TCP_NOTSENT_LOWAT", None)  # Linux, macOS
_BYTES_ACKED = struct.Struct("=Q")
_BYTES_ACKED_OFFSET = 120  # struct tcp_info.tcpi_bytes_acked (Linux >= 4.1)
_TCP_INFO_SIZE = _BYTES_ACKED_OFFSET + _BYTES_ACKED.size
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets


@runtime_checkable
class StreamTransport(Protocol):
    """What a server tells and lets a streaming response do about its connection.

    Every method is cheap (a system call at most) and never raises: a connection already
    closed answers 0 / ``None`` and ignores what is asked of it.
    """

    @property
    def stream_send_buffer(self) -> int:
        """The kernel send buffer the server wants for streams (bytes; 0: leave it)."""
        ...

    @property
    def stream_unsent_limit(self) -> int:
        """The unsent bytes the server wants a stream's connection to hold (0: leave it)."""
        ...

    def set_send_buffer(self, size: int) -> None:
        """Set the connection's kernel send buffer (``SO_SNDBUF``) to ``size`` bytes."""
        ...

    def limit_unsent(self, size: int) -> None:
        """Hold at most about ``size`` bytes written but not sent: in the kernel
        (``TCP_NOTSENT_LOWAT``, where there is one) and in the server's write buffer (its
        high-water mark: a send waits beyond it)."""
        ...

    def unacknowledged_bytes(self) -> int:
        """Bytes written to the connection that the peer has not acknowledged yet: the
        server's write buffer plus the kernel's send queue."""
        ...

    def acknowledged_bytes(self) -> int | None:
        """Bytes the peer acknowledged since the connection opened, or ``None`` when the
        server cannot tell (then no watchdog runs)."""
        ...

    def abort(self) -> None:
        """Close the connection now, discarding unsent bytes, with a reset (RST): no FIN
        waits behind data the peer does not read; the descriptor and buffers are freed."""
        ...


def transport_of(scope: Scope) -> StreamTransport | None:
    """The server's :class:`StreamTransport` for this request, if it offers one."""
    extensions = scope.get("extensions")
    if extensions:
        offered = extensions.get(TRANSPORT_EXTENSION)
        if offered:
            found: StreamTransport | None = offered.get("transport")
            return found
    return None


class BodyWriter(Protocol):
    """What a server gives :class:`SocketTransport` to write response bodies directly (see
    "Direct body writes" in the module docstring)."""

    def body_target(self, send: Any) -> object | None:
        """The response whose server ``send`` this is, if it is the connection's current
        one; else ``None``."""
        ...

    def write_body(self, target: object, data: bytes) -> bool:
        """Write ``data`` as the next piece of ``target``'s body if its ``send`` would write
        it at once; False (nothing written) otherwise."""
        ...


class DirectBody:
    """Writes one response's body pushes directly (see "Direct body writes"); made by
    :func:`direct_body`."""

    __slots__ = ("_hops", "_target", "_writer")

    def __init__(self, writer: BodyWriter, target: object, hops: tuple[Any, ...]) -> None:
        self._writer = writer
        self._target = target
        self._hops = hops

    def write(self, data: bytes) -> bool:
        """Write ``data`` now, telling the wrappers in between; False: nothing was written
        (send it through ``send``)."""
        if not data or not self._writer.write_body(self._target, data):
            return False
        for hop in self._hops:
            hop.body_written(len(data))
        return True


def direct_body(scope: Scope, send: Any) -> DirectBody | None:
    """The direct writer of this request's body, if its server offers one and ``send``
    reaches the server's own ``send`` through body-transparent wrappers only (see the
    module docstring); else ``None``."""
    transport = transport_of(scope)
    target_of = getattr(transport, "body_target", None)
    if target_of is None:
        return None
    hops: list[Any] = []
    while True:
        owner = getattr(send, "__self__", None)
        inner = getattr(owner, "passthrough_send", None)
        if inner is None or not callable(getattr(owner, "body_written", None)):
            break
        hops.append(owner)
        send = inner
    target = target_of(send)
    writer = getattr(transport, "body_writer", None)
    if target is None or writer is None:
        return None
    return DirectBody(writer, target, tuple(hops))


class SocketTransport:
    """:class:`StreamTransport` over an ``asyncio`` transport (uvloop's too) and its socket.

    One per connection: the server makes it when the connection opens and calls
    :meth:`connection_lost` when it is lost (from then on it never touches the descriptor,
    whose number the kernel may give to a new connection). It holds no buffer.
    """

    __slots__ = (
        "_fd",
        "_lost",
        "_socket",
        "_tcp",
        "body_writer",
        "stream_send_buffer",
        "stream_unsent_limit",
        "transport",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        stream_send_buffer: int = 0,
        stream_unsent_limit: int = 0,
        body_writer: BodyWriter | None = None,
    ) -> None:
        self.transport = transport
        self.body_writer = body_writer
        self.stream_send_buffer = stream_send_buffer
        self.stream_unsent_limit = stream_unsent_limit
        sock: Any = transport.get_extra_info("socket")
        self._socket = sock
        self._fd = -1
        self._tcp = False
        self._lost: Callable[[], None] | None = None
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                self._fd = sock.fileno()
                self._tcp = sock.family in (socket.AF_INET, socket.AF_INET6)

    def body_target(self, send: Any) -> object | None:
        """The response ``send`` belongs to, where the server writes bodies directly."""
        writer = self.body_writer
        return None if writer is None or self._socket is None else writer.body_target(send)

    def connection_lost(self) -> None:
        """The server's transport is closed: forget the socket and the body writer; call the
        ``on_lost`` callback, if one is set."""
        self.body_writer = None
        self._socket = None
        self._fd = -1
        lost, self._lost = self._lost, None
        if lost is not None:
            lost()

    def on_lost(self, callback: Callable[[], None] | None) -> bool:
        """Call ``callback`` once the connection is lost (``None``: no more); False if it
        is already lost (the callback is not kept)."""
        if self._socket is None and callback is not None:
            return False
        self._lost = callback
        return True

    def set_send_buffer(self, size: int) -> None:
        sock = self._socket
        if sock is not None and size > 0:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    def limit_unsent(self, size: int) -> None:
        sock = self._socket
        if sock is None or size <= 0:
            return
        with contextlib.suppress(OSError, ValueError):
            self.transport.set_write_buffer_limits(high=size)
        if self._tcp and _TCP_NOTSENT_LOWAT is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, size)

    def unacknowledged_bytes(self) -> int:
        if self._socket is None:
            return 0
        pending = self.transport.get_write_buffer_size()
        if _ioctl is not None and self._fd >= 0:
            with contextlib.suppress(OSError):
                queued = _ioctl(self._fd, _SIOCOUTQ, b"\0\0\0\0")
                pending += int.from_bytes(queued, sys.byteorder, signed=True)
        return pending

    def acknowledged_bytes(self) -> int | None:
        sock = self._socket
        if sock is None or not self._tcp or _TCP_INFO is None:
            return None
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_SIZE)
        except OSError:
            return None
        if len(info) < _TCP_INFO_SIZE:  # a kernel older than tcpi_bytes_acked
            return None
        acked: int = _BYTES_ACKED.unpack_from(info, _BYTES_ACKED_OFFSET)[0]
        return acked

    def abort(self) -> None:
        sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        self.transport.abort()
