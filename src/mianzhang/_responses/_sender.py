"""The sending half of a running stream: headers, the body as it is produced, the heartbeat,
and live bytes pushed straight to an idle stream.

Guarantees (on top of the engine's, ``_engine``):

* **Order.** Bytes leave in the order they were produced or pushed: pushed bytes are sent at
  once only when nothing is buffered, no send is in flight and the sender is parked waiting;
  otherwise they join the buffer behind what is there.
* **No timer per send.** A send's first step runs at once (``_send.start_send``); the
  ``send_timeout`` deadline is armed only for a send that suspended (the transport paused:
  the peer reads slower than we write), and ends the stream when it passes.
* **Push.** :meth:`Sender.deliver` takes bytes from a live source (one that serves every
  caught-up reader of a stream in one pass, ``mianzhang.log``). It returns ``False`` when the
  stream cannot take them now (its buffer would exceed ``max_buffer``, or it is ending): the
  source then keeps them, and the stream's producer reads them itself, in order, catching up.
  A send started by :meth:`Sender.deliver` that suspends is finished by the stream's own
  task, under the send timeout; one that fails fails the stream as if the task had sent it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from typing import TYPE_CHECKING, Any

from starlette.types import Message, Receive, Scope, Send

from ._connection import ConnectionGuard
from ._flag import Flag
from ._heartbeats import Heartbeats, loop_heartbeats
from ._producer import Producer
from ._send import Pending, finish_send, start_send, start_send_as
from ._supervisor import StreamSupervisor
from ._transport import DirectBody

if TYPE_CHECKING:
    from ._response import _StreamingBase

__all__ = ["Sender"]

logger = logging.getLogger("mianzhang.responses")


class Sender:
    """The sender of one stream (the engine's ``Stream`` is one): it runs in the request
    task, parked on ``_wake`` while there is nothing to send."""

    __slots__ = (
        "_beats",
        "_complete",
        "_context",
        "_direct",
        "_ending",
        "_failure",
        "_guard",
        "_idle",
        "_in_flight",
        "_in_flight_items",
        "_in_flight_size",
        "_last_sent",
        "_loop",
        "_ping_due",
        "_producer",
        "_task",
        "_wake",
        "disconnect_message",
        "draining",
        "finished_cleanly",
        "headers_sent",
        "heartbeat_tick",
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
        self._beats: Heartbeats | None = None  # the loop's heartbeats, while one is due
        self.heartbeat_tick = 0
        self._ending = False
        self._complete = False  # the end of the body was handed to the server
        self._guard: ConnectionGuard | None = None  # the server's transport, if offered
        self._direct: DirectBody | None = None  # its direct body writes, for pushes
        self._loop = asyncio.get_running_loop()
        # parked on ``_wake`` with nothing buffered: pushed bytes may be sent at once (while
        # the flag is not set: whatever buffers bytes or stops the stream sets it)
        self._idle = False
        self._in_flight: Pending | None = None  # a pushed send that suspended
        self._in_flight_items = 0
        self._in_flight_size = 0
        self._failure: BaseException | None = None  # a pushed send raised this
        self._task: asyncio.Task[Any] | None = None  # set when a live source may push
        self._context: contextvars.Context | None = None
        self.draining = False
        self.stop_reason: str | None = None
        self.disconnect_message: Message | None = None
        self.finished_cleanly = False
        self.headers_sent = False

    # -- push: live bytes from outside the task -------------------------------------------------
    def deliver(self, chunk: bytes, items: int) -> bool:
        """Take ``chunk`` (``items`` events, encoded) from a live source: sent now if the
        stream is idle, else buffered; ``False`` if it cannot be taken now (see the module
        docstring). Called from a loop callback (the source's pass), not from a task. The hot
        path of a fan-out: kept to the few attributes it must read."""
        if not self._idle or self._wake._is_set:  # (buffered bytes and stops set the flag)
            return self._queue(chunk, items)
        direct = self._direct
        if direct is not None and direct.write(chunk):  # written at once, no ASGI send
            self._sent(len(chunk), items)
            return True
        self._idle = False  # no second push into this send
        message = {"type": "http.response.body", "body": chunk, "more_body": True}
        try:
            pending = start_send_as(self.send, message, self._loop, self._task, self._context)  # type: ignore[arg-type]
        except OSError:  # ASGI 2.4 servers raise it for a peer that is gone
            self._peer_gone({"type": "http.disconnect"})
            return True
        except Exception as exc:  # raised by the stream's task, as if it had sent
            self._failure = exc
            self._wake.set()
            return True
        if pending is None:
            self._idle = True
            self._last_sent = self._loop.time()  # (``_sent`` inlined: the hot path)
            if self._guard is not None:
                self._guard.sent()
            if self.supervisor is not None:
                stats = self.supervisor.stats
                stats.items_sent += items
                stats.bytes_sent += len(chunk)
        else:  # the peer reads slower than we write: the task finishes it
            self._in_flight = pending
            self._in_flight_items = items
            self._in_flight_size = size = len(chunk)
            self._producer.pending += size
            self._wake.set()
        return True

    def _queue(self, chunk: bytes, items: int) -> bool:
        """Pushed bytes behind what is buffered or being sent, within ``max_buffer``."""
        producer = self._producer
        if self.stop_reason is not None or producer.done or self._failure is not None:
            return False
        pending = producer.pending
        if pending and pending + len(chunk) > self.response.max_buffer:
            return False
        producer.push(chunk, items)
        return True

    # -- the sender, in the request task --------------------------------------------------------
    async def _open(self) -> bool:
        """Send the headers once an item is buffered or ``open_timeout`` passed (``0``: once
        the producer took its first step); False if the stream stopped first; a failure with
        nothing buffered is raised (an HTTP error)."""
        producer = self._producer
        if not producer.buffer and not producer.done and self.stop_reason is None:
            wait = self.response.open_timeout
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
            else:
                await asyncio.sleep(0)  # the producer's first step runs before this resumes
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
            if self._in_flight is not None or self._failure is not None:
                if not await self._finish_pushed():
                    return
                continue
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
            if ping > 0 and self._beats is None:
                # one heartbeat due per idle period, moved on (not re-made) while data flows
                self._beats = beats = loop_heartbeats()
                beats.add(self, self._last_sent + ping)
            self._idle = True
            await wake.wait()
            self._idle = False
            if self._ping_due and self.stop_reason is None and not await self._send_ping():
                return

    async def _finish_pushed(self) -> bool:
        """A pushed send that suspended: finish it (under the send timeout); a pushed send
        that failed: raise its failure here, in the task. False if the stream must stop."""
        failure = self._failure
        if failure is not None:
            self._failure = None
            raise failure
        pending = self._in_flight
        assert pending is not None
        size = self._in_flight_size
        try:
            return await self._wait_sent(pending, size, self._in_flight_items)
        finally:
            self._in_flight = None
            self._producer.accepted(size)

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
        try:
            pending = start_send(self.send, message)
        except OSError:  # ASGI 2.4 servers raise it for a peer that is gone
            self._peer_gone({"type": "http.disconnect"})
            return False
        if pending is not None:
            return await self._wait_sent(pending, len(body), items)
        self._sent(len(body), items)
        return self.stop_reason not in ("disconnect", "send_timeout")

    async def _wait_sent(self, pending: Pending, size: int, items: int) -> bool:
        """The rest of a send that suspended, within ``send_timeout``; False if the stream
        must stop."""
        timeout = self.response.send_timeout
        try:
            if timeout is None:
                await finish_send(pending)
            else:
                async with asyncio.timeout(timeout):
                    await finish_send(pending)
        except TimeoutError:
            self.stop_reason = "send_timeout"
            logger.warning("stream closed: send blocked longer than %.1fs", timeout)
            return False
        except OSError:
            self._peer_gone({"type": "http.disconnect"})
            return False
        self._sent(size, items)
        return self.stop_reason not in ("disconnect", "send_timeout")

    def _sent(self, size: int, items: int) -> None:
        """``size`` body bytes (``items`` events) were handed to the server."""
        self._last_sent = self._loop.time()
        if self._guard is not None:
            self._guard.sent()
        if self.supervisor is not None:
            stats = self.supervisor.stats
            stats.items_sent += items
            stats.bytes_sent += size

    # -- ends -----------------------------------------------------------------------------------
    def _peer_gone(self, message: Message) -> None:
        """The client is gone: stop the sender and cancel the iterator at once (its ``finally``
        runs now, not when a blocked send returns)."""
        self.disconnect_message = message
        if self.stop_reason != "send_timeout":
            self.stop_reason = "disconnect"
        self._idle = False
        self._wake.set()
        self._producer.cancel()

    def _stalled(self) -> None:
        """The watchdog reset the connection (nothing acknowledged for ``send_timeout``)."""
        if self.stop_reason != "disconnect":
            self.stop_reason = "send_timeout"
        self._idle = False
        self._wake.set()
        self._producer.cancel()

    # -- heartbeat ------------------------------------------------------------------------------
    def heartbeat_due(self, now: float) -> None:
        """The heartbeat's time came (``_heartbeats``): ping only after ``ping`` seconds
        without body bytes, else wait again from the last ones."""
        beats = self._beats
        if beats is None:
            return  # stopped meanwhile
        idle_until = self._last_sent + self.response.ping_interval
        if now < idle_until:
            beats.add(self, idle_until)
            return
        self._beats = None
        self._ping_due = True
        self._wake.set()

    def _stop_heartbeat(self) -> None:
        beats, self._beats = self._beats, None
        if beats is not None:
            beats.remove(self)

    async def _send_ping(self) -> bool:
        """The heartbeat the timer asked for; False if the stream must stop."""
        self._ping_due = False
        chunk = self.response.ping_chunk()
        return not chunk or await self._send_body(chunk)
