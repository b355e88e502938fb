"""One running response: the sender, its timers and its watchers (the engine's hot path).

A :class:`Stream` owns every task and timer it starts: the producer task (``_producer``)
filling the buffer, the sender (this class, in the request task), a watcher on the server's
``receive()`` for ``http.disconnect``, the optional ``data_sender_callable`` and
``shutdown_event`` watcher, the heartbeat and drain timers.

Guarantees:

* **Delivery.** What the producer buffered is sent in order, coalesced into one ASGI message
  per flush; the last bytes leave with the end of the body. The headers wait for the first
  item at most ``open_timeout`` seconds, so an iterator failing at once raises (a normal HTTP
  error) instead of an in-band error.
* **One outcome.** A stream stops for one reason, counted once in the supervisor's
  statistics: the iterator's end, its failure, the peer gone (``http.disconnect``, or
  ``OSError`` from ``send``), a send blocked longer than ``send_timeout``, a drain, or the
  request task cancelled (counted as an error).
* **Peer gone, at once.** A disconnect cancels the producer immediately, even while a send is
  blocked, so the iterator's ``finally`` blocks run now.
* **Cut means cut.** Where the server offers its transport (``_transport``), a stream also
  ends when its peer acknowledged nothing for ``send_timeout`` (the watchdog of
  ``_connection``, counted as a send timeout), and after a send timeout, or any other end
  short of a complete body while the peer holds bytes back, the connection is reset at once.
* **Cleanup.** However ``run()`` ends (returns, raises, is cancelled): the timers are
  cancelled; the producer is cancelled once and every helper cancelled; all are awaited (the
  iterator's cleanup has run, or was cut at ``cleanup_timeout``; helper failures are logged,
  never raised); the stream leaves its supervisor; then ``client_close_handler_callable`` is
  awaited if the peer went away. The background task runs only after a body that ended
  cleanly. With ``raise_errors`` a failure after the headers aborts the body and is raised
  from ``run()`` once all this is done.
* **Heartbeat.** A ping only after ``ping`` seconds without body bytes (one re-armed timer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from starlette.types import Message, Receive, Scope, Send

from .._errors import SendTimeout
from ._cleanup import await_helpers
from ._connection import ConnectionGuard
from ._content import iterate
from ._flag import Flag
from ._producer import Producer
from ._supervisor import StreamSupervisor

if TYPE_CHECKING:
    from ._response import Waitable, _StreamingBase

__all__ = ["Stream"]

logger = logging.getLogger("mianzhang.responses")

_DISCONNECT = frozenset({"http.disconnect", "websocket.disconnect"})


class Stream:
    """One running response (see the module docstring): created by the response's
    ``__call__``, driven by :meth:`run` in the request task."""

    __slots__ = (
        "_closed",
        "_complete",
        "_drain_handle",
        "_ending",
        "_guard",
        "_last_sent",
        "_loop",
        "_ping_due",
        "_ping_handle",
        "_producer",
        "_wake",
        "_watcher",
        "disconnect_message",
        "draining",
        "finished_cleanly",
        "headers_sent",
        "receive",
        "response",
        "scope",
        "send",
        "stop_reason",
        "supervisor",
    )

    def __init__(
        self,
        response: _StreamingBase,
        scope: Scope,
        receive: Receive,
        send: Send,
        supervisor: StreamSupervisor | None,
    ) -> None:
        self.response = response
        self.scope = scope
        self.receive = receive
        self.send = send
        self.supervisor = supervisor
        self._wake = Flag()  # something to send, the producer's end, a ping, a stop
        self._producer = Producer(self._wake)
        self._last_sent = 0.0  # loop time of the last body bytes handed to the server
        self._ping_due = False
        self._ping_handle: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Future[Message] | None = None
        self._closed = False
        self._ending = False
        self._complete = False  # the end of the body was handed to the server
        self._guard: ConnectionGuard | None = None  # the server's transport, if offered
        self._drain_handle: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self.draining = False
        self.stop_reason: str | None = None
        self.disconnect_message: Message | None = None
        self.finished_cleanly = False
        self.headers_sent = False

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
        first in the list returned); register with the supervisor."""
        response = self.response
        producer = self._producer.start(iterate(response.content), response)
        self._watch_disconnect()
        helpers: list[asyncio.Future[Any]] = [producer]
        self._guard = ConnectionGuard.of(self.scope, response.send_timeout, self._stalled)
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
        if self._drain_handle is not None:
            self._drain_handle.cancel()
        if self._ping_handle is not None:
            self._ping_handle.cancel()
        self._closed = True
        if self._guard is not None:  # before anything awaits: a cut releases the socket now
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
        """Listen for ``http.disconnect``: a task on the server's ``receive()`` itself (no
        coroutine of ours around it: one frame less per idle stream), re-armed by its done
        callback after any other message (a request body being read)."""
        watcher = self._watcher = asyncio.ensure_future(self.receive())
        watcher.add_done_callback(self._received)

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

    def _peer_gone(self, message: Message) -> None:
        """The client is gone: stop the sender and cancel the iterator at once (its ``finally``
        runs now, not when a blocked send returns)."""
        self.disconnect_message = message
        if self.stop_reason != "send_timeout":
            self.stop_reason = "disconnect"
        self._wake.set()
        self._producer.cancel()

    async def _watch_shutdown_event(self, event: Waitable) -> None:
        await event.wait()
        self.on_drain(self.response.shutdown_grace_period)

    # -- sender ---------------------------------------------------------------------------------
    async def _open(self) -> bool:
        """Send the headers once an item is buffered or ``open_timeout`` passed; False if the
        stream stopped first; a failure with nothing buffered is raised (an HTTP error)."""
        producer = self._producer
        if not producer.buffer and not producer.done and self.stop_reason is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.response.open_timeout):
                    await self._wake.wait()
        if producer.failure is not None and not producer.buffer:
            raise producer.failure
        if self.stop_reason is not None:
            return False
        await self._send_headers()
        return True

    async def _pump(self) -> None:
        """Send buffered bytes until the producer ends or the stream must stop; a heartbeat
        whenever the ping timer finds the stream idle."""
        producer = self._producer
        buffer = producer.buffer
        wake = self._wake
        ping = self.response.ping_interval
        while True:
            wake.clear()
            if buffer:
                if self.stop_reason is not None:
                    return  # the peer is gone or was cut: nothing more can be sent
                if producer.done and producer.failure is None:
                    return  # the last bytes leave with the end of the body (one message less)
                if not await self._flush():
                    return
                continue
            if self.stop_reason is not None or self.draining or producer.done:
                return
            if ping > 0 and self._ping_handle is None:
                # one timer per idle period, re-armed (not re-created) while data flows
                self._ping_handle = self._loop.call_at(
                    self._last_sent + ping, self._ping_timer, ping
                )
            await wake.wait()
            if self._ping_due and self.stop_reason is None and not await self._send_ping():
                return

    async def _finish(self) -> None:
        """After the pump: the final in-band message and the end of the body, if possible."""
        if self.stop_reason in ("disconnect", "send_timeout"):  # nothing more can be sent
            return
        tail = self._last_words()
        if tail is None:
            return  # abort: the missing end of the chunked body tells the client
        producer = self._producer
        items = 0
        if producer.buffer:
            body, items = producer.take()
            tail = body + tail
        self._ending = True
        if not await self._send_body(tail, items, more=False):
            self._ending = False
            return
        self._complete = True
        self.finished_cleanly = producer.failure is None

    def _last_words(self) -> bytes | None:
        """What ends the body: an in-band error after a failure (None if the format has none:
        the body is aborted), a ``reconnect`` hint after a drain, else nothing."""
        response = self.response
        failure = self._producer.failure
        if failure is not None:
            return None if response.raise_errors else response.error_chunk(failure)
        if self.stop_reason == "drain":
            hint = self.supervisor.retry_hint() if self.supervisor else 2000
            return response.reconnect_chunk(hint) or b""
        return b""

    async def _flush(self) -> bool:
        """Send everything buffered as one message (write coalescing)."""
        producer = self._producer
        body, items = producer.take()
        sent = await self._send_body(body, items)
        producer.accepted(len(body))
        return sent

    async def _send_headers(self) -> None:
        response = self.response
        status, headers = response.status_code, response.raw_headers
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        self.headers_sent = True
        self._last_sent = self._loop.time()

    async def _send_body(self, body: bytes, items: int = 0, more: bool = True) -> bool:
        """Send one chunk (``items`` events, counted once sent); False if the stream must stop
        (timeout, peer gone, cut)."""
        message = {"type": "http.response.body", "body": body, "more_body": more}
        timeout = self.response.send_timeout
        try:
            if timeout is None:
                await self.send(message)
            else:
                async with asyncio.timeout(timeout):
                    await self.send(message)
            self._last_sent = self._loop.time()
            if self._guard is not None:
                self._guard.sent()
            if self.supervisor is not None:
                stats = self.supervisor.stats
                stats.items_sent += items
                stats.bytes_sent += len(body)
        except TimeoutError:
            self.stop_reason = "send_timeout"
            logger.warning("stream closed: send blocked longer than %.1fs", timeout)
            return False
        except OSError:  # ASGI 2.4 servers raise it for a peer that is gone
            self._peer_gone({"type": "http.disconnect"})
            return False
        return self.stop_reason not in ("disconnect", "send_timeout")

    def _stalled(self) -> None:
        """The watchdog reset the connection (nothing acknowledged for ``send_timeout``)."""
        if self.stop_reason != "disconnect":
            self.stop_reason = "send_timeout"
        self._wake.set()
        self._producer.cancel()

    # -- heartbeat ------------------------------------------------------------------------------
    def _ping_timer(self, ping: float) -> None:
        """Ping only after ``ping`` seconds without body bytes: re-arm if some were sent."""
        self._ping_handle = None
        idle_until = self._last_sent + ping
        if self._loop.time() < idle_until:
            self._ping_handle = self._loop.call_at(idle_until, self._ping_timer, ping)
            return
        self._ping_due = True
        self._wake.set()

    async def _send_ping(self) -> bool:
        """The heartbeat the timer asked for; False if the stream must stop."""
        self._ping_due = False
        chunk = self.response.ping_chunk()
        return not chunk or await self._send_body(chunk)
