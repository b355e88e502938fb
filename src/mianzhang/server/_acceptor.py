"""Accepting connections in batches: up to ``ACCEPT_BATCH`` per event-loop iteration.

uvloop (its libuv, since 1.45) accepts ONE connection per loop iteration. While streams keep the
loop busy (each iteration runs a fair turn of bulk output, ``mianzhang._responses._turns``), a
storm of connections (1,000 clients reconnecting after a deploy, a page of dashboards opened
at once) is accepted at one per iteration: the 1,000th waits 1,000 iterations for its
``accept``, before its request is even read (measured: 1,000 bulk streams connecting at once,
first-event p99 0.31-0.99 s, median 0.65 s; with batches 0.18-0.40 s, median 0.27 s). The
price: uvloop keeps the Python socket object of a connection it did not accept itself,
0.2-0.45 KiB per connection (measured; ``MIANZHANG_ACCEPT_BATCH=0`` leaves accepting to the
loop). asyncio's own loop accepts up to its backlog per iteration. :class:`Acceptor` does what
asyncio does, on any loop: it watches the listening socket itself and accepts up to a batch of
pending connections each time it is readable, handing each to the loop
(``connect_accepted_socket``) with the server's protocol.

Guarantees:

* **Same connections.** Each accepted socket gets a protocol from the same factory uvicorn would
  have used (limits, the transport extension, uvicorn's connection tracking and graceful
  shutdown all apply as before); ``TCP_NODELAY`` is set as asyncio and uvloop do.
* **Bounded.** At most ``batch`` (``ACCEPT_BATCH``) accepts per readable event; the loop
  polls between batches. Out of descriptors or memory (``EMFILE``, ``ENFILE``, ``ENOBUFS``,
  ``ENOMEM``), it logs once and stops accepting for ``RETRY_DELAY`` seconds instead of
  spinning (asyncio's policy); connections wait in the kernel's backlog meanwhile.
* **Owned.** The handshakes in flight are tasks this acceptor owns: :meth:`close` stops
  accepting and :meth:`wait_closed` awaits them (each is one loop iteration long), so no
  connection is accepted after the server's shutdown began without being known to it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable

__all__ = ["ACCEPT_BATCH", "RETRY_DELAY", "Acceptor"]

logger = logging.getLogger("mianzhang.server")

ACCEPT_BATCH = 128
"""Connections accepted per readable event of the listening socket, at most (the default of
``MIANZHANG_ACCEPT_BATCH``)."""

RETRY_DELAY = 1.0
"""Seconds accepting pauses after the process ran out of descriptors or memory."""

_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Acceptor:
    """Accepts connections from one listening socket (see the module docstring). Has the
    ``close()`` of an ``asyncio.Server``, which is all uvicorn's shutdown calls."""

    __slots__ = ("_batch", "_factory", "_handshakes", "_loop", "_paused", "_reading", "_socket")

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        backlog: int = 2048,
        batch: int = ACCEPT_BATCH,
    ) -> None:
        """``sock``: bound, listening or not (it is made to listen with ``backlog``);
        ``batch``: connections accepted per readable event, at most."""
        self._socket = sock
        self._batch = batch
        self._factory = protocol_factory
        self._loop = asyncio.get_running_loop()
        self._handshakes: set[asyncio.Task[None]] = set()
        self._paused: asyncio.TimerHandle | None = None
        self._reading = False
        sock.setblocking(False)
        sock.listen(backlog)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._socket,)

    def start(self) -> None:
        """Start accepting (idempotent)."""
        if not self._reading:
            self._reading = True
            self._loop.add_reader(self._socket.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting; the socket itself stays open (its owner closes it)."""
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        self._stop_reading()

    async def wait_closed(self) -> None:
        """Return once the handshakes in flight are done (connections they made are the
        server's to close)."""
        while self._handshakes:
            await asyncio.wait(tuple(self._handshakes))

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._socket.fileno())

    def _accept(self) -> None:
        """The listening socket is readable: accept up to a batch of connections."""
        for _ in range(self._batch):
            try:
                conn, _address = self._socket.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # none left (or one gone before it was accepted)
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    raise
                self._pause(exc)
                return
            self._hand_over(conn)

    def _hand_over(self, conn: socket.socket) -> None:
        """Give ``conn`` its transport and protocol (an owned task, one iteration long)."""
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        handshake = self._loop.create_task(self._connect(conn))
        self._handshakes.add(handshake)
        handshake.add_done_callback(self._handshakes.discard)

    async def _connect(self, conn: socket.socket) -> None:
        """The transport and protocol of ``conn``; a connection that fails meanwhile (the
        peer reset it) is closed and forgotten, as the loop's own accept does."""
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError as exc:
            conn.close()
            logger.debug("accepted connection lost before it was served: %s", exc)
        except BaseException:
            conn.close()
            raise

    def _pause(self, exc: OSError) -> None:
        logger.error(
            "accepting connections paused for %.0f s: %s (raise the descriptor limit, or lower "
            "max_connections)",
            RETRY_DELAY,
            exc,
        )
        self._stop_reading()
        self._paused = self._loop.call_later(RETRY_DELAY, self._resume)

    def _resume(self) -> None:
        self._paused = None
        self.start()
