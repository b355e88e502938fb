"""One running response: the sender, its timers and its watchers (the engine's hot path).

A :class:`Stream` owns every task and timer it starts: the producer task (``_producer``)
filling the buffer, the sender (this class, in the request task), a watcher on the server's
``receive()`` for ``http.disconnect`` (unless the server's transport reports a lost connection
itself: ``_transport``'s ``on_lost``), the optional ``data_sender_callable`` and
``shutdown_event`` watcher, the heartbeat and drain timers.

Guarantees:

* **Delivery.** What the producer buffered is sent in order, coalesced into one ASGI message
  per flush; the last bytes leave with the end of the body. The headers wait for the first
  item at most ``open_timeout`` seconds (``0``: just the producer's first step), so an
  iterator failing at once raises (a normal HTTP error) instead of an in-band error. A live
  source may also push encoded bytes (``_sender``): in order with what it yielded.
* **One outcome.** A stream stops for one reason, counted once in the supervisor's
  statistics: the iterator's end, its failure, the peer gone (``http.disconnect``, or
  ``OSError`` from ``send``), a send blocked longer than ``send_timeout``, a drain, or the
  request task cancelled (counted as an error).
* **Peer gone, at once.** A disconnect cancels the producer immediately, even while a send is
  blocked, so the iterator's ``finally`` blocks run now.
* **Cut means cut.** Where the server offers its transport (``_transport``), a stream also
  ends when its peer acknowledged nothing for ``send_timeout`` (the watchdog of
  ``_connection``, counted as a send timeout), and after a send timeout, or any other end
  short of a complete body while the peer holds bytes back, the connection is reset at once
  (streams cut together: at their cut turn, at most 64 per loop iteration, ``_cuts``).
* **Cleanup.** However ``run()`` ends (returns, raises, is cancelled): the timers are
  cancelled; the producer is cancelled once and every helper cancelled; all are awaited (the
  iterator's cleanup has run, or was cut at ``cleanup_timeout``; helper failures are logged,
  never raised); the stream leaves its supervisor; then ``client_close_handler_callable`` is
  awaited if the peer went away. The background task runs only after a body that ended
  cleanly. With ``raise_errors`` a failure after the headers aborts the body and is raised
  from ``run()`` once all this is done.
* **Heartbeat.** A ping only after ``ping`` seconds without body bytes, at most 20 ms later
  (one timer per loop for every stream's heartbeat: ``_heartbeats``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import TYPE_CHECKING, Any

from starlette.types import Message, Receive, Scope, Send

from .._errors import SendTimeout
from ._cleanup import await_helpers
from ._connection import ConnectionGuard
from ._content import open_content
from ._cuts import loop_cuts
from ._sender import Sender
from ._supervisor import StreamSupervisor
from ._transport import direct_body

if TYPE_CHECKING:
    from ._response import Waitable, _StreamingBase

__all__ = ["Stream"]

logger = logging.getLogger("mianzhang.responses")


async def _cut_turn() -> bool:
    """Wait for this cut stream's turn to be torn down (``_cuts``); False if cancelled while
    waiting (the teardown then goes on at once, and the cancellation is raised after it)."""
    try:
        await loop_cuts().take()
    except asyncio.CancelledError:
        return False
    return True


_DISCONNECT = frozenset({"http.disconnect", "websocket.disconnect"})


class Stream(Sender):
    """One running response (see the module docstring): created by the response's
    ``__call__``, driven by :meth:`run` in the request task. The sending half (headers, body,
    heartbeat, pushed bytes) is :class:`~._sender.Sender`."""

    __slots__ = ("_closed", "_drain_handle", "_watcher")

    def __init__(
        self,
        response: _StreamingBase,
        scope: Scope,
        receive: Receive,
        send: Send,
        supervisor: StreamSupervisor | None,
    ) -> None:
        super().__init__(response, scope, receive, send, supervisor)
        self._closed = False
        self._drain_handle: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Future[Message] | None = None

    # -- the stream from start to end -----------------------------------------------------------
    async def run(self) -> None:
        """Serve the response to its end (the guarantees are in the module docstring)."""
        helpers = self._start()
        try:
            await self._deliver()
        except BaseException:
            self.stop_reason = self.stop_reason or "crashed"
            raise
        finally:
            await self._close(helpers)
        if self.response.raise_errors:
            self._raise_as_peers_do()
        # like Starlette: the background task runs only after a stream that did not fail
        background = self.response.background
        if background is not None and self.finished_cleanly:
            await background()

    def _raise_as_peers_do(self) -> None:
        """``raise_errors``: a failure after the headers or a send timeout propagates."""
        failure = self._producer.failure
        if failure is not None and self.headers_sent:
            raise failure
        if self.stop_reason == "send_timeout":
            raise SendTimeout(f"send blocked longer than {self.response.send_timeout}s")

    def _start(self) -> list[asyncio.Future[Any]]:
        """Start the producer, the disconnect watcher and the optional helpers (the producer
        first in the list returned); register with the supervisor. A live source (one that
        pushes, ``_content``) gets this stream's :meth:`~._sender.Sender.deliver`."""
        response = self.response
        iterator, pushes = open_content(response.content, self.deliver)
        if pushes:
            self._task = asyncio.current_task()
            self._context = contextvars.copy_context()
        producer = self._producer.start(iterator, response)
        helpers: list[asyncio.Future[Any]] = [producer]
        guard = self._guard = ConnectionGuard.of(self.scope, response.send_timeout, self._stalled)
        if pushes and guard is not None:
            self._direct = direct_body(self.scope, self.send)
        if guard is None or not guard.on_lost(self._connection_lost):
            self._watch_disconnect()  # the server does not say: ask receive()
        if response.data_sender_callable is not None:
            helpers.append(asyncio.create_task(response.data_sender_callable()))
        if response.shutdown_event is not None:
            helpers.append(asyncio.create_task(self._watch_shutdown_event(response.shutdown_event)))
        if self.supervisor is not None:
            self.supervisor._register(self)
        return helpers

    async def _deliver(self) -> None:
        """Headers, the body as it is produced, a drain's cut-off, and the end of the body."""
        if await self._open():
            await self._pump()
        if self.draining and not self._producer.done:
            await self._stop_producing()
        await self._finish()

    async def _close(self, helpers: list[asyncio.Future[Any]]) -> None:
        """Cancel the timers and every helper, await them all, leave the supervisor, then tell
        the application that the client went away."""
        self._idle = False  # nothing is pushed into a stream that is over
        # streams cut together are torn down a batch per loop iteration (``_cuts``)
        cancelled = self.stop_reason == "send_timeout" and not await _cut_turn()
        if self._in_flight is not None:
            self._in_flight.close()
            self._in_flight = None
        if self._drain_handle is not None:
            self._drain_handle.cancel()
        self._stop_heartbeat()
        self._closed = True
        if self._guard is not None:  # before anything else awaits: the socket is released now
            self._guard.release(complete=self._complete, stop_reason=self.stop_reason)
        self._producer.cancel()
        if self._watcher is not None:
            helpers.append(self._watcher)
        for task in helpers[1:]:
            task.cancel()
        supervisor = self.supervisor
        try:
            # the producer's cancellation runs the iterator's finally blocks: wait for them
            await await_helpers(helpers, self.response.cleanup_timeout)
        finally:  # even when cancelled again while waiting: never leak a live stream
            if supervisor is not None:
                supervisor._unregister(self)
                failed = self._producer.failure is not None
                supervisor.stats.count_end(self.stop_reason, failed=failed)
        failure = self._producer.failure
        if failure is not None and self.headers_sent and not self.response.raise_errors:
            logger.error("stream failed after headers", exc_info=failure)
        if self.disconnect_message is not None:
            handler = self.response.client_close_handler_callable
            if handler is not None:
                await handler(self.disconnect_message)
        if cancelled:
            raise asyncio.CancelledError

    # -- callbacks from outside -----------------------------------------------------------------
    def on_drain(self, grace: float) -> None:
        """Drain after ``grace`` seconds (at least the response's ``shutdown_grace_period``); a
        ``shutdown_event`` given to the response is set now, so a cooperative iterator can say
        goodbye and end by itself within the grace (sse-starlette's meaning)."""
        if self._drain_handle is None and not self.draining:
            grace = max(grace, self.response.shutdown_grace_period)
            self._drain_handle = self._loop.call_later(grace, self._begin_drain)
            set_event = getattr(self.response.shutdown_event, "set", None)
            if callable(set_event):
                set_event()

    def _begin_drain(self) -> None:
        self.draining = True
        self._idle = False
        self._wake.set()

    async def _stop_producing(self) -> None:
        """The drain's cut-off: stop the producer; what it already made is flushed."""
        self.stop_reason = "drain"
        producer = self._producer
        producer.cancel()
        if producer.task is not None:
            await asyncio.wait((producer.task,))  # (our own cancellation still propagates)
        if producer.buffer:
            await self._flush()

    # -- watchers -------------------------------------------------------------------------------
    def _watch_disconnect(self) -> None:
        """Listen for ``http.disconnect`` where the server's transport does not report a lost
        connection itself: a task on the server's ``receive()`` (no coroutine of ours around
        it: one frame less per idle stream), re-armed by its done callback after any other
        message (a request body being read)."""
        watcher = self._watcher = asyncio.ensure_future(self.receive())
        watcher.add_done_callback(self._received)

    def _connection_lost(self) -> None:
        """The server lost the connection (its transport's ``on_lost``): the peer is gone,
        unless the stream cut it itself or had already ended its body."""
        if not self._ending and self.stop_reason != "send_timeout":
            self._peer_gone({"type": "http.disconnect"})

    def _received(self, watcher: asyncio.Future[Message]) -> None:
        if watcher.cancelled() or watcher.exception() is not None:
            return  # a failure is logged when the stream ends and awaits its helpers
        message = watcher.result()
        if message["type"] in _DISCONNECT:
            # servers also say so once the body is complete, and after our own cut
            if not self._ending and self.stop_reason != "send_timeout":
                self._peer_gone(message)
        elif not self._closed:
            self._watch_disconnect()

    async def _watch_shutdown_event(self, event: Waitable) -> None:
        await event.wait()
        self.on_drain(self.response.shutdown_grace_period)
