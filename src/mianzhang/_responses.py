"""Layer 2: streaming responses for any ASGI app (Starlette, FastAPI, or bare ASGI).

:class:`EventSourceResponse` (SSE), :class:`NDJSONResponse` (one JSON value per line) and
:class:`TextStreamResponse` (chunked text) share one engine with these guarantees:

* **Delivery.** Every item the iterator yields is sent, in order. Items the iterator produced
  while the socket was still busy are coalesced into one ASGI message; an item that is ready is
  never held back waiting for more (the sender runs whenever the producer awaits anything).
* **Bounded memory.** At most ``max_buffer`` bytes (plus one item) are produced and not yet
  accepted by the server's ``send``; a client that stops reading stalls the iterator, it does
  not grow a queue.
* **Disconnect.** When the peer goes away (ASGI ``http.disconnect``, or ``OSError`` from
  ``send``) the iterator is cancelled and closed at once, even while a send is blocked, so its
  ``finally`` blocks run; ``client_close_handler_callable`` is awaited. Sync iterables run in
  the thread pool and are closed (``close()``) the same way.
* **Slow client.** A send blocked longer than ``send_timeout`` seconds ends the stream the same
  way and is counted in :class:`StreamSupervisor` statistics.
* **Errors.** An exception before anything was sent propagates (the framework answers a normal
  HTTP error). After the headers it becomes a final in-band error (an SSE ``error`` event with a
  JSON ``{"type", "message"}`` body, no traceback) and the stream ends cleanly.
* **Heartbeat.** A ping (an SSE comment by default) only after ``ping`` idle seconds.
* **Graceful shutdown.** When the :class:`StreamSupervisor` drains (server shutdown), every live
  stream flushes what it holds, sends a final ``reconnect`` event with a jittered ``retry:``
  hint, and ends. No monkey-patching of uvicorn: the supervisor is triggered by its signal hook,
  by the ``mianzhang serve`` server, or by the application itself. A ``shutdown_event`` given
  to a response is set when the drain reaches it (sse-starlette's cooperative farewell), and
  setting it from the application drains that one stream.
* **HEAD.** A ``HEAD`` request gets the headers and an empty body; the iterator is not started
  (an endless stream would otherwise never complete a body the client does not read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass
from types import FrameType
from typing import Any, ClassVar, Protocol

import anyio.to_thread
import orjson
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ._errors import MianzhangError
from ._sse import ServerSentEvent, _check_sep, encode_comment
from ._turns import loop_turns

__all__ = [
    "EventSourceResponse",
    "NDJSONResponse",
    "StreamStatistics",
    "StreamSupervisor",
    "TextStreamResponse",
]

logger = logging.getLogger("mianzhang.responses")

SUPERVISOR_STATE_KEY = "mianzhang.supervisor"
"""Key of the :class:`StreamSupervisor` in ASGI lifespan state (``scope["state"]``)."""

DEFAULT_PING = 15.0
DEFAULT_SEND_TIMEOUT = 30.0
DEFAULT_MAX_BUFFER = 64 * 1024
DEFAULT_OPEN_TIMEOUT = 0.25

Content = AsyncIterable[Any] | Iterable[Any]


class _Waitable(Protocol):
    async def wait(self) -> Any: ...


@dataclass
class StreamStatistics:
    """Counters of one :class:`StreamSupervisor` (monotonic, except ``active``)."""

    opened: int = 0
    active: int = 0
    completed: int = 0
    disconnected: int = 0
    send_timeouts: int = 0
    errors: int = 0
    drained: int = 0
    items_sent: int = 0  # events (lines, chunks) handed to the server, heartbeats excluded
    bytes_sent: int = 0  # body bytes handed to the server, heartbeats included


class StreamSupervisor:
    """Counts live streams and ends them gracefully when the server shuts down.

    ``drain()`` is idempotent and may be called from a signal handler: every stream registered
    now or later gets, after ``grace_period`` seconds, a final ``reconnect`` event with a
    ``retry:`` hint drawn uniformly from ``retry_ms`` (spreading the reconnect storm) and ends.

    Use it as the app's lifespan (``Starlette(lifespan=supervisor.lifespan)``) to publish it to
    every response through lifespan state and to hook SIGTERM/SIGINT: the hook drains the streams
    first and then calls the handler that was installed before (uvicorn's), which is what makes
    uvicorn's own graceful shutdown finish instead of waiting for endless streams.
    """

    def __init__(
        self,
        *,
        grace_period: float = 0.0,
        retry_ms: tuple[int, int] = (1000, 3000),
        hook_signals: bool = True,
    ) -> None:
        if retry_ms[0] < 0 or retry_ms[1] < retry_ms[0]:
            raise ValueError(f"retry_ms must be (low, high) with 0 <= low <= high: {retry_ms}")
        self.grace_period = grace_period
        self.retry_ms = retry_ms
        self.hook_signals = hook_signals
        self.stats = StreamStatistics()
        self._draining = False
        self._drain_requested = False  # set at once by drain(), even from a signal handler
        self._live: set[_Stream] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle_waiters: set[asyncio.Future[None]] = set()
        self._draining_event: asyncio.Event | None = None

    @property
    def draining(self) -> bool:
        """True once :meth:`drain` was called."""
        return self._drain_requested or self._draining

    def retry_hint(self) -> int:
        """A reconnect delay (milliseconds) for one client, jittered within ``retry_ms``."""
        low, high = self.retry_ms
        return random.randint(low, high)

    def drain(self) -> None:
        """Begin ending every live stream (safe from signal handlers and other threads)."""
        self._drain_requested = True
        loop = self._loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(RuntimeError):  # loop closing
                loop.call_soon_threadsafe(self._drain_now)
                return
        self._drain_now()

    def _drain_now(self) -> None:
        if self._draining:
            return
        self._draining = True
        if self._draining_event is not None:
            self._draining_event.set()
        logger.info("draining %d live stream(s)", len(self._live))
        for stream in list(self._live):
            stream.on_drain(self.grace_period)

    async def wait_draining(self) -> None:
        """Return once the drain has begun (for services that drain alongside the streams)."""
        if self._draining:
            return
        if self._draining_event is None:
            self._draining_event = asyncio.Event()
        await self._draining_event.wait()

    async def wait_idle(self) -> None:
        """Return once no stream is live (bound it with ``asyncio.timeout``)."""
        while self._live:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle_waiters.add(waiter)
            try:
                await waiter
            finally:
                self._idle_waiters.discard(waiter)

    def _register(self, stream: _Stream) -> None:
        # the loop of the latest stream: a supervisor may outlive one loop (tests, restarts)
        self._loop = stream._loop
        self._live.add(stream)
        self.stats.opened += 1
        self.stats.active += 1
        if self._draining:
            stream.on_drain(self.grace_period)

    def _unregister(self, stream: _Stream) -> None:
        self._live.discard(stream)
        self.stats.active -= 1
        if not self._live:
            for waiter in self._idle_waiters:
                if not waiter.done():
                    waiter.set_result(None)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[dict[str, Any]]:
        """ASGI lifespan: publishes the supervisor and hooks SIGTERM/SIGINT while serving.

        Each serving period starts undrained, so one supervisor serves successive lifespans
        (a test client per test, an in-process restart) instead of draining every new stream.
        """
        self._loop = asyncio.get_running_loop()
        self._draining = self._drain_requested = False
        with self.signal_hook() if self.hook_signals else contextlib.nullcontext():
            try:
                yield {SUPERVISOR_STATE_KEY: self}
            finally:
                self._drain_now()

    @contextlib.contextmanager
    def signal_hook(self) -> Iterator[None]:
        """While active, SIGTERM/SIGINT drain the streams, then run the previous handler.

        Only in the main thread (Python delivers signals there); elsewhere it does nothing.
        The previous handlers are restored on exit.
        """
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous: dict[int, Any] = {}

        def handler(signum: int, frame: FrameType | None) -> None:
            self.drain()
            before = previous.get(signum)
            if callable(before):
                before(signum, frame)
            elif before == signal.SIG_DFL:  # nobody else handles it: die as if we were not here
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)
        try:
            yield
        finally:
            for signum, before in previous.items():
                if signal.getsignal(signum) is handler:
                    signal.signal(signum, before)


def _supervisor_of(scope: Scope) -> StreamSupervisor | None:
    state = scope.get("state")
    if state:
        found = state.get(SUPERVISOR_STATE_KEY)
        if isinstance(found, StreamSupervisor):
            return found
    return None


def _public_error(exc: BaseException) -> dict[str, str]:
    """The in-band description of a failure: type and message, never a traceback. Messages of
    foreign exceptions may carry internals, so only mianzhang's own are shown."""
    if isinstance(exc, MianzhangError):
        return {"type": type(exc).__name__, "message": str(exc)}
    return {"type": "internal_error", "message": "the stream failed on the server"}


class _StreamingBase(Response):
    """The shared engine (see the module docstring). Subclasses say how items become bytes."""

    media_type: str | None = None
    default_ping: ClassVar[float] = 0.0
    sse_items: ClassVar[bool] = False  # ServerSentEvent items encode themselves

    def __init__(
        self,
        content: Content,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
        *,
        ping: float | None = None,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        open_timeout: float = DEFAULT_OPEN_TIMEOUT,
        client_close_handler_callable: Callable[[Message], Awaitable[None]] | None = None,
        data_sender_callable: Callable[[], Coroutine[None, None, None]] | None = None,
        shutdown_event: _Waitable | None = None,
        shutdown_grace_period: float = 0.0,
        supervisor: StreamSupervisor | None = None,
    ) -> None:
        self.content = content
        self.status_code = status_code
        self.media_type = self.media_type if media_type is None else media_type
        self.background = background
        self.ping_interval = self.default_ping if ping is None else float(ping)
        if self.ping_interval < 0:
            raise ValueError("ping must be >= 0 (0 disables the heartbeat)")
        if send_timeout is not None and send_timeout <= 0:
            raise ValueError("send_timeout must be positive or None")
        if shutdown_grace_period < 0:
            raise ValueError("shutdown_grace_period must be >= 0")
        if max_buffer <= 0:
            raise ValueError("max_buffer must be positive")
        self.send_timeout = send_timeout
        self.max_buffer = max_buffer
        self.open_timeout = open_timeout
        self.client_close_handler_callable = client_close_handler_callable
        self.data_sender_callable = data_sender_callable
        self.shutdown_event = shutdown_event
        self.shutdown_grace_period = shutdown_grace_period
        self.supervisor = supervisor
        default = self._default_raw_headers
        if default is not None and headers is None and self.media_type == type(self).media_type:
            # the usual case: the class's own headers, encoded once (the list stays per
            # response: Starlette's MutableHeaders edits it in place)
            self.raw_headers = list(default)
        else:
            self.init_headers(self._stream_headers(headers))

    _default_raw_headers: ClassVar[tuple[tuple[bytes, bytes], ...] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._default_raw_headers = None
        if cls.init_headers is Response.init_headers:  # a subclass's own init_headers runs
            probe = object.__new__(cls)
            probe.status_code = 200
            probe.init_headers(probe._stream_headers(None))
            cls._default_raw_headers = tuple(probe.raw_headers)

    def _stream_headers(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        """Defaults, then the caller's headers replacing them case-insensitively (one header
        per name), never ``Connection``."""
        merged = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        if headers:
            for key, value in headers.items():
                name = key.lower()
                if name == "connection":
                    continue  # hop-by-hop; forbidden in HTTP/2 (RFC 9113 §8.2.2)
                merged[name] = value
        return merged

    # -- what subclasses define -----------------------------------------------------------------
    def encode_item(self, item: Any) -> bytes:
        raise NotImplementedError

    def ping_chunk(self) -> bytes | None:
        return None

    def error_chunk(self, exc: BaseException) -> bytes | None:
        """Bytes that tell the client the stream failed, or None to abort the body instead."""
        return None

    def reconnect_chunk(self, retry_ms: int) -> bytes | None:
        return None

    # -- ASGI -----------------------------------------------------------------------------------
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
        # a plain method returning the stream's coroutine: no frame of its own stays alive
        # for the whole stream (about 0.3 KiB per idle connection)
        if scope.get("method") == "HEAD":
            return self._head(send)
        supervisor = self.supervisor or _supervisor_of(scope)
        return _Stream(self, scope, receive, send, supervisor).run()

    async def _head(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if self.background is not None:
            await self.background()


def _iterate(content: Content) -> AsyncIterator[Any]:
    if isinstance(content, AsyncIterable):
        return content.__aiter__()
    if isinstance(content, list | tuple):
        return _iterate_sequence(content)
    return _iterate_in_thread(content)


async def _iterate_sequence(items: list[Any] | tuple[Any, ...]) -> AsyncIterator[Any]:
    for item in items:
        yield item


_END = object()


async def _iterate_in_thread(content: Iterable[Any]) -> AsyncIterator[Any]:
    """A sync iterable stepped in the thread pool, closed (its ``finally`` run) at the end.

    A thread cannot be interrupted: when cancelled while ``next()`` runs, this waits for that
    step to return before closing, so ``close()`` never meets a generator still executing.
    (Starlette's ``iterate_in_threadpool`` abandons the step and never closes the iterator.)
    """
    iterator = iter(content)
    try:
        while True:
            step = asyncio.ensure_future(anyio.to_thread.run_sync(next, iterator, _END))
            try:
                item = await asyncio.shield(step)
            except asyncio.CancelledError:
                await asyncio.wait((step,))
                if not step.cancelled():
                    step.exception()  # retrieved: the cancellation is what propagates
                raise
            if item is _END:
                return
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await anyio.to_thread.run_sync(close)


class _Flag:
    """A one-waiter ``asyncio.Event``: the same semantics for the single task that waits on it,
    without the Event's waiter deque (about 0.8 KiB per flag, two per live stream) and without
    a coroutine per wait (``wait()`` hands out the future itself)."""

    __slots__ = ("_is_set", "_waiter")

    def __init__(self) -> None:
        self._is_set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        if not self._is_set:
            self._is_set = True
            waiter = self._waiter
            if waiter is not None:
                self._waiter = None
                if not waiter.done():
                    waiter.set_result(None)

    def clear(self) -> None:
        self._is_set = False

    def is_set(self) -> bool:
        return self._is_set

    def wait(self) -> asyncio.Future[None]:
        """A future done once the flag is set (already done if it is). A waiter cancelled
        while waiting cancels only its own future."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = asyncio.get_running_loop().create_future()
            if self._is_set:
                waiter.set_result(None)
            else:
                self._waiter = waiter
        return waiter


class _Stream:
    """One running response: a producer task filling a byte buffer, the sender in the request
    task, a watcher task for ``http.disconnect``. Owns all three and every timer."""

    __slots__ = (
        "_buffer",
        "_buffered",
        "_closed",
        "_drain_handle",
        "_drained",
        "_ending",
        "_failure",
        "_last_sent",
        "_loop",
        "_ping_due",
        "_ping_handle",
        "_producer",
        "_producer_done",
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
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._wake = _Flag()
        self._drained = _Flag()
        self._last_sent = 0.0  # loop time of the last body bytes handed to the server
        self._ping_due = False
        self._ping_handle: asyncio.TimerHandle | None = None
        self._producer: asyncio.Task[None] | None = None
        self._producer_done = False
        self._watcher: asyncio.Future[Message] | None = None
        self._closed = False
        self._ending = False
        self._failure: BaseException | None = None
        self._drain_handle: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self.draining = False
        self.stop_reason: str | None = None
        self.disconnect_message: Message | None = None
        self.finished_cleanly = False
        self.headers_sent = False

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

    # -- producer ---------------------------------------------------------------------------
    async def _produce(self, iterator: AsyncIterator[Any]) -> None:
        """Encode items into the buffer. ``_buffered`` counts bytes produced and not yet
        accepted by ``send`` (buffered or in flight): at ``max_buffer`` the iterator waits.
        Each batch of ``max_buffer`` bytes is made in this loop's turn (``_turns``): bulk
        streams share the loop one batch per iteration."""
        encode = self.response.encode_item
        sse = self.response.sse_items
        buffer = self._buffer
        wake = self._wake
        drained = self._drained
        limit = self.response.max_buffer
        turns = loop_turns()
        produced = 0
        checkpoint = 0  # the first item is a checkpoint
        first = True
        try:
            async for item in iterator:
                # the hot path: an SSE response fed ServerSentEvent objects, inlined
                chunk = item.encode() if sse and type(item) is ServerSentEvent else encode(item)
                buffer.append(chunk)
                size = len(chunk)
                self._buffered += size
                produced += size
                if not wake._is_set:
                    wake.set()
                if produced < checkpoint:
                    continue
                if first:
                    # one loop turn after the first item: the sender puts the headers and the
                    # first event on the wire now instead of after a full batch; the rest of
                    # the batch waits for this loop's turn
                    first = False
                    await asyncio.sleep(0)
                    await turns.take()
                elif self._buffered >= limit:
                    while self._buffered >= limit:
                        drained.clear()
                        await drained.wait()
                    await turns.take()  # the next batch: the next turn
                elif turns.contended:
                    await turns.take()  # a batch's worth made while others wait
                checkpoint = produced + limit - self._buffered
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failure = exc
        finally:
            self._producer_done = True
            wake.set()
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()

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
        if message["type"] == "http.disconnect":
            if not self._ending:  # servers also say so once the body is complete
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
        self._cancel_producer()

    def _cancel_producer(self) -> None:
        """Cancel the producer at most once: a second cancellation would interrupt the
        iterator's ``finally`` blocks while they await their cleanup."""
        producer = self._producer
        if producer is not None and not producer.done() and not producer.cancelling():
            producer.cancel()

    async def _watch_shutdown_event(self, event: _Waitable) -> None:
        await event.wait()
        self.on_drain(self.response.shutdown_grace_period)

    # -- sender -----------------------------------------------------------------------------
    async def _send_body(self, body: bytes, more: bool = True) -> bool:
        """Send one chunk; False if the stream must stop (timeout, peer gone)."""
        message = {"type": "http.response.body", "body": body, "more_body": more}
        timeout = self.response.send_timeout
        try:
            if timeout is None:
                await self.send(message)
            else:
                async with asyncio.timeout(timeout):
                    await self.send(message)
            self._last_sent = self._loop.time()
        except TimeoutError:
            self.stop_reason = "send_timeout"
            logger.warning("stream closed: send blocked longer than %.1fs", timeout)
            return False
        except OSError:  # ASGI 2.4 servers raise it for a peer that is gone
            self._peer_gone({"type": "http.disconnect"})
            return False
        return self.stop_reason != "disconnect"

    async def _flush(self) -> bool:
        """Send everything buffered as one message (write coalescing)."""
        buffer = self._buffer
        items = len(buffer)
        body = buffer[0] if items == 1 else b"".join(buffer)
        buffer.clear()
        sent = await self._send_body(body)
        if sent and self.supervisor is not None:
            stats = self.supervisor.stats
            stats.items_sent += items
            stats.bytes_sent += len(body)
        self._buffered -= len(body)
        self._drained.set()
        return sent

    async def _send_headers(self) -> None:
        response = self.response
        await self.send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": response.raw_headers,
            }
        )
        self.headers_sent = True
        self._last_sent = self._loop.time()

    def _ping_timer(self, ping: float) -> None:
        """Ping only after ``ping`` seconds without body bytes: re-arm if some were sent."""
        self._ping_handle = None
        idle_until = self._last_sent + ping
        if self._loop.time() < idle_until:
            self._ping_handle = self._loop.call_at(idle_until, self._ping_timer, ping)
            return
        self._ping_due = True
        self._wake.set()

    async def _pump(self) -> None:
        """Send buffered bytes until the producer ends or the stream must stop."""
        response = self.response
        wake = self._wake
        ping = response.ping_interval
        # Headers wait briefly for the first item, so an iterator failing at once still gets
        # a normal HTTP error; a slow first item does not hold the headers back longer.
        if not self._buffer and not self._producer_done and self.stop_reason is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(response.open_timeout):
                    await wake.wait()
        if self._failure is not None and not self._buffer:
            raise self._failure
        if self.stop_reason is not None:
            return
        await self._send_headers()
        while True:
            wake.clear()
            if self._buffer:
                if self._producer_done and self._failure is None and self.stop_reason is None:
                    return  # the last bytes leave with the end of the body (one message less)
                if not await self._flush():
                    return
                continue
            if self.stop_reason is not None or self.draining or self._producer_done:
                return
            if ping > 0:
                # one timer per idle period, re-armed (not re-created) while data flows
                if self._ping_handle is None:
                    self._ping_handle = self._loop.call_at(
                        self._last_sent + ping, self._ping_timer, ping
                    )
                await wake.wait()
                if self._ping_due:
                    self._ping_due = False
                    chunk = response.ping_chunk()
                    if chunk and not await self._send_body(chunk):
                        return
            else:
                await wake.wait()

    async def _finish(self) -> None:
        """After the pump: the final in-band message and the end of the body, if possible."""
        response = self.response
        if self.stop_reason in ("disconnect", "send_timeout"):  # nothing more can be sent
            return
        tail = b""
        if self._failure is not None:
            chunk = response.error_chunk(self._failure)
            if chunk is None:
                return  # abort: the missing end of the chunked body tells the client
            tail = chunk
        elif self.stop_reason == "drain":
            hint = self.supervisor.retry_hint() if self.supervisor else 2000
            tail = response.reconnect_chunk(hint) or b""
        buffer = self._buffer
        items = len(buffer)
        if items:
            tail = b"".join(buffer) + tail
            buffer.clear()
        self._ending = True
        if not await self._send_body(tail, more=False):
            self._ending = False
            return
        if self.supervisor is not None and tail:
            stats = self.supervisor.stats
            stats.items_sent += items
            stats.bytes_sent += len(tail)
        self.finished_cleanly = self._failure is None

    async def run(self) -> None:
        response = self.response
        supervisor = self.supervisor
        iterator = _iterate(response.content)
        producer = self._producer = asyncio.create_task(self._produce(iterator))
        self._watch_disconnect()
        helpers: list[asyncio.Future[Any]] = [producer]
        if response.data_sender_callable is not None:
            helpers.append(asyncio.create_task(response.data_sender_callable()))
        if response.shutdown_event is not None:
            helpers.append(asyncio.create_task(self._watch_shutdown_event(response.shutdown_event)))
        if supervisor is not None:
            supervisor._register(self)
        try:
            await self._pump()
            if self.draining and not self._producer_done:
                self.stop_reason = "drain"
                self._cancel_producer()  # stop producing; what it already made is flushed below
                await asyncio.wait((producer,))  # (our own cancellation still propagates)
                if self._buffer:
                    await self._flush()
            await self._finish()
        except BaseException:
            self.stop_reason = self.stop_reason or "crashed"
            raise
        finally:
            if self._drain_handle is not None:
                self._drain_handle.cancel()
            if self._ping_handle is not None:
                self._ping_handle.cancel()
            self._closed = True
            self._cancel_producer()
            if self._watcher is not None:
                helpers.append(self._watcher)
            for task in helpers[1:]:
                task.cancel()
            try:
                # the producer's cancellation runs the iterator's finally blocks: wait for them
                results = await asyncio.gather(*helpers, return_exceptions=True)
                for result in results:
                    if isinstance(result, Exception):
                        logger.error("stream helper failed", exc_info=result)
            finally:  # even when cancelled again while waiting: never leak a live stream
                if supervisor is not None:
                    supervisor._unregister(self)
                    self._count(supervisor.stats)
            if self._failure is not None and self.headers_sent:
                logger.error("stream failed after headers", exc_info=self._failure)
            if self.disconnect_message is not None:
                handler = response.client_close_handler_callable
                if handler is not None:
                    await handler(self.disconnect_message)
        # like Starlette: the background task runs only after a stream that did not fail
        if response.background is not None and self.finished_cleanly:
            await response.background()

    def _count(self, stats: StreamStatistics) -> None:
        if self.stop_reason == "disconnect":
            stats.disconnected += 1
        elif self.stop_reason == "send_timeout":
            stats.send_timeouts += 1
        elif self._failure is not None or self.stop_reason == "crashed":
            stats.errors += 1
        elif self.stop_reason == "drain":
            stats.drained += 1
        else:
            stats.completed += 1


class EventSourceResponse(_StreamingBase):
    """A ``text/event-stream`` response (Server-Sent Events) from an iterable of events.

    Items may be :class:`ServerSentEvent` (sent as encoded), ``dict`` (keyword arguments of
    ``ServerSentEvent``), ``bytes`` (sent as they are, already encoded) or anything else (its
    ``str`` as the ``data`` of one event). Accepts sse-starlette 3.x's arguments with the same
    meaning; the differences are listed in ``docs/migrating-from-sse-starlette.md``.

    ``ping`` seconds (default 15; ``0`` disables) of silence produce one heartbeat, by default
    the comment ``: ping``; ``ping_message_factory`` returns a custom :class:`ServerSentEvent`.
    """

    media_type = "text/event-stream"
    default_ping: ClassVar[float] = DEFAULT_PING
    sse_items: ClassVar[bool] = True

    def __init__(
        self,
        content: Content,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str = "text/event-stream",
        background: BackgroundTask | None = None,
        ping: float | None = None,
        sep: str | None = None,
        ping_message_factory: Callable[[], ServerSentEvent] | None = None,
        data_sender_callable: Callable[[], Coroutine[None, None, None]] | None = None,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        client_close_handler_callable: Callable[[Message], Awaitable[None]] | None = None,
        shutdown_event: _Waitable | None = None,
        shutdown_grace_period: float = 0.0,
        cleanup_timeout: float | None = None,
        *,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        open_timeout: float = DEFAULT_OPEN_TIMEOUT,
        supervisor: StreamSupervisor | None = None,
    ) -> None:
        self.sep = _check_sep(sep)
        self.ping_message_factory = ping_message_factory
        self._ping_bytes = encode_comment("ping", self.sep)
        del cleanup_timeout  # accepted for compatibility: cleanup is awaited, never abandoned
        super().__init__(
            content,
            status_code,
            headers,
            media_type,
            background,
            ping=ping,
            send_timeout=send_timeout,
            max_buffer=max_buffer,
            open_timeout=open_timeout,
            client_close_handler_callable=client_close_handler_callable,
            data_sender_callable=data_sender_callable,
            shutdown_event=shutdown_event,
            shutdown_grace_period=shutdown_grace_period,
            supervisor=supervisor,
        )

    def encode_item(self, item: Any) -> bytes:
        if type(item) is bytes:
            return item
        if isinstance(item, ServerSentEvent):
            return item.encode()
        if isinstance(item, dict):
            return ServerSentEvent(**{"sep": self.sep, **item}).encode()
        if isinstance(item, bytes | bytearray | memoryview):
            return bytes(item)
        return ServerSentEvent(str(item), sep=self.sep).encode()

    def ping_chunk(self) -> bytes:
        if self.ping_message_factory is not None:
            return self.ping_message_factory().encode()
        return self._ping_bytes

    def error_chunk(self, exc: BaseException) -> bytes:
        return ServerSentEvent(_public_error(exc), event="error", sep=self.sep).encode()

    def reconnect_chunk(self, retry_ms: int) -> bytes:
        return ServerSentEvent("", event="reconnect", retry=retry_ms, sep=self.sep).encode()


class NDJSONResponse(_StreamingBase):
    """``application/x-ndjson``: each item as one line of JSON (orjson); ``bytes`` and ``str``
    items are sent as they are (they must carry their own newline).

    No heartbeat by default (``ping`` seconds send an empty line, which NDJSON readers that
    skip blank lines accept). A failure after the headers becomes a last line
    ``{"error": {"type", "message"}}``; a drain ends the body after what was produced.
    """

    media_type = "application/x-ndjson"

    def encode_item(self, item: Any) -> bytes:
        if isinstance(item, bytes):
            return item
        if isinstance(item, str):
            return item.encode()
        return orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)

    def ping_chunk(self) -> bytes:
        return b"\n"

    def error_chunk(self, exc: BaseException) -> bytes:
        return orjson.dumps({"error": _public_error(exc)}, option=orjson.OPT_APPEND_NEWLINE)


class TextStreamResponse(_StreamingBase):
    """Chunked ``text/plain; charset=utf-8`` from ``str`` (UTF-8) or ``bytes`` items.

    Plain text has no in-band error: a failure after the headers ends the connection without
    the terminating chunk, so the client sees a truncated body rather than a clean end.
    """

    media_type = "text/plain"

    def encode_item(self, item: Any) -> bytes:
        if isinstance(item, bytes):
            return item
        return str(item).encode()
