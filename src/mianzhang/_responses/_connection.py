"""What a stream does with its connection when the server offers a transport (``_transport``):
the kernel send buffer, the acknowledgement watchdog, the reset that makes a cut a cut.

Guarantees (only where the server offers :class:`~._transport.StreamTransport`):

* **Send buffer.** Set once, when the stream starts, to the server's ``stream_send_buffer``;
  the unsent bytes the connection may hold limited to its ``stream_unsent_limit``.
* **Watchdog.** A stream whose peer acknowledged no byte for ``send_timeout`` seconds while
  some were unacknowledged is cut (``on_stall`` is called once), whether or not a ``send``
  blocked: also when the kernel took everything that was sent. The cut comes between
  ``send_timeout`` and ``send_timeout`` plus one check interval (a quarter of it, at most
  5 s) after the last acknowledgement seen. Bytes acknowledged are the peer's own count
  (``TCP_INFO``), not bytes handed to the kernel.
* **Nothing per event.** The sender calls :meth:`ConnectionGuard.sent` after a send: it has
  the stream watched if it is not (one attribute test otherwise). A watched stream is checked
  once per interval, in its loop's shared round for that interval (``_watchdog``: one timer
  for all streams, no timer of its own), and stops being watched at the first check that
  finds every byte acknowledged: a reader that keeps up costs one check per interval while
  data flows, an idle one none.
* **Loss.** Where the transport offers ``on_lost``, :meth:`ConnectionGuard.on_lost` has the
  stream told of a lost connection by the server (no task on ``receive()`` needed); the
  callback is withdrawn by :meth:`ConnectionGuard.release`.
* **Cut.** :meth:`ConnectionGuard.release` ends the watching and, after an end that is not a
  clean finish, resets the connection (RST, ``abort()``) when the peer holds bytes back, and
  always after a send timeout: no socket outlives its stream waiting for a reader that does
  not read, and its descriptor and buffers are released at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable

from starlette.types import Scope

from ._transport import StreamTransport, transport_of
from ._watchdog import Watchdogs, loop_watchdogs

__all__ = ["ConnectionGuard", "check_interval"]

logger = logging.getLogger("mianzhang.responses")

_MAX_INTERVAL = 5.0
_EARLY = 1e-3  # a timer may fire this much early: still counts as a full interval


def check_interval(send_timeout: float) -> float:
    """Seconds between two watchdog checks: a quarter of ``send_timeout``, at most 5 s."""
    return min(send_timeout / 4, _MAX_INTERVAL)


class ConnectionGuard:
    """The connection under one stream (see the module docstring). When the watchdog gives
    up on the peer it resets the connection, then calls ``on_stall`` (once, from a loop
    callback)."""

    __slots__ = (
        "_acked",
        "_context",
        "_interval",
        "_on_stall",
        "_progress_at",
        "_timeout",
        "_watchdogs",
        "_watching",
        "transport",
    )

    def __init__(
        self,
        transport: StreamTransport,
        send_timeout: float | None,
        on_stall: Callable[[], None],
    ) -> None:
        self.transport = transport
        size = transport.stream_send_buffer
        if size > 0:
            transport.set_send_buffer(size)
        unsent = transport.stream_unsent_limit
        if unsent > 0:
            transport.limit_unsent(unsent)
        self._on_stall = on_stall
        self._watching = False
        self._context: contextvars.Context | None = None  # the stream's, while watched
        self._acked: int | None = None
        self._progress_at = 0.0
        self._timeout = 0.0
        self._interval = 0.0  # 0: no watchdog (no timeout, or acknowledgements unknown)
        self._watchdogs: Watchdogs | None = None
        if send_timeout is not None and transport.acknowledged_bytes() is not None:
            self._timeout = send_timeout
            self._interval = check_interval(send_timeout)
            # fetched here, in the stream's task: ``sent`` is also called from loop
            # callbacks (a fan-out's pass), where the loop's objects cannot be looked up
            self._watchdogs = loop_watchdogs()

    @classmethod
    def of(
        cls, scope: Scope, send_timeout: float | None, on_stall: Callable[[], None]
    ) -> ConnectionGuard | None:
        """The guard of a stream of this request, if its server offers its transport."""
        transport = transport_of(scope)
        return None if transport is None else cls(transport, send_timeout, on_stall)

    def on_lost(self, callback: Callable[[], None]) -> bool:
        """Have ``callback`` called once if the connection is lost, where the server's
        transport offers it (``_transport``); False where it does not."""
        hook = getattr(self.transport, "on_lost", None)
        return bool(hook is not None and hook(callback))

    @property
    def watching(self) -> bool:
        """The stream is in its loop's watchdog round."""
        return self._watching

    def sent(self) -> None:
        """Bytes were handed to the server: watch their acknowledgement. (Called from the
        stream's task or from a loop callback, a live source's push.)"""
        watchdogs = self._watchdogs
        if not self._watching and watchdogs is not None:
            self._context = contextvars.copy_context()  # for the cut's log record and callback
            self._acked = self.transport.acknowledged_bytes()
            self._progress_at = asyncio.get_running_loop().time()
            watchdogs.watch(self, self._interval)
            self._watching = True

    def check(self, now: float) -> bool:
        """One watchdog check, called by the round at loop time ``now``: done (False) when
        nothing is unacknowledged; progress when the peer's count moved; the stall reported
        (and False) once none was seen for ``send_timeout``."""
        transport = self.transport
        if transport.unacknowledged_bytes() <= 0:
            return self._unwatched()  # all acknowledged: not watched until the next send
        acked = transport.acknowledged_bytes()
        if acked is None:
            return self._unwatched()  # the connection is gone
        if acked != self._acked:
            self._acked = acked
            self._progress_at = now
        elif now - self._progress_at >= self._timeout - _EARLY:
            context = self._context
            self._unwatched()
            if context is None:
                self._cut()
            else:
                context.run(self._cut)  # logged with the stream's own request and stream ids
            return False
        return True

    def _unwatched(self) -> bool:
        self._watching = False
        self._context = None
        return False

    def _cut(self) -> None:
        logger.warning("stream cut: its peer acknowledged nothing for %.1fs", self._timeout)
        self.transport.abort()
        self._on_stall()

    def release(self, *, complete: bool, stop_reason: str | None) -> None:
        """The stream is over: no more checks, no more loss callback; reset the connection
        unless the body is complete or the peer already went away (see the module
        docstring)."""
        hook = getattr(self.transport, "on_lost", None)
        if hook is not None:
            hook(None)
        if self._watching and self._watchdogs is not None:
            self._unwatched()
            self._watchdogs.unwatch(self, self._interval)
        if complete or stop_reason == "disconnect":
            return
        transport = self.transport
        if stop_reason == "send_timeout" or transport.unacknowledged_bytes() > 0:
            transport.abort()
