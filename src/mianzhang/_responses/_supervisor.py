"""Live streams of one application: statistics, graceful drain and the signal hook.

Guarantees:

* **Counted once.** Every stream registered is counted in :class:`StreamStatistics` exactly
  once by its outcome (completed, disconnected, send timeout, error, drained) when it ends,
  also when its request task is cancelled.
* **Drain reaches every stream.** :meth:`StreamSupervisor.drain` (idempotent, safe from signal
  handlers and other threads) ends every stream live now or opened later in this serving
  period: after the grace period each flushes what it holds, sends a final ``reconnect`` with a
  jittered ``retry:`` hint, and ends.
* **Handlers restored.** :meth:`StreamSupervisor.signal_hook` puts back the SIGTERM/SIGINT
  handlers it replaced (unless someone replaced them meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any, Protocol

from starlette.types import Scope

__all__ = [
    "SUPERVISOR_STATE_KEY",
    "LiveStream",
    "StreamStatistics",
    "StreamSupervisor",
    "supervisor_of",
]

logger = logging.getLogger("mianzhang.responses")

SUPERVISOR_STATE_KEY = "mianzhang.supervisor"
"""Key of the :class:`StreamSupervisor` in ASGI lifespan state (``scope["state"]``)."""


class LiveStream(Protocol):
    """What the supervisor needs of a running stream."""

    def on_drain(self, grace: float) -> None:
        """End the stream gracefully after ``grace`` seconds."""


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

    def count_end(self, stop_reason: str | None, *, failed: bool) -> None:
        """Count one ended stream under exactly one outcome."""
        if stop_reason == "disconnect":
            self.disconnected += 1
        elif stop_reason == "send_timeout":
            self.send_timeouts += 1
        elif failed or stop_reason == "crashed":
            self.errors += 1
        elif stop_reason == "drain":
            self.drained += 1
        else:
            self.completed += 1


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
        self._live: set[LiveStream] = set()
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

    def reset(self) -> None:
        """End the drain: streams registered from now on are served normally (those already
        told to drain still end). Each new lifespan does this; so does
        ``AppStatus.should_exit = False`` in ``mianzhang.compat.sse_starlette``."""
        self._draining = self._drain_requested = False
        self._draining_event = None

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

    def _register(self, stream: LiveStream) -> None:
        # the loop of the latest stream: a supervisor may outlive one loop (tests, restarts)
        self._loop = asyncio.get_running_loop()
        self._live.add(stream)
        self.stats.opened += 1
        self.stats.active += 1
        if self._draining:
            stream.on_drain(self.grace_period)

    def _unregister(self, stream: LiveStream) -> None:
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
        self.reset()
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


def supervisor_of(scope: Scope) -> StreamSupervisor | None:
    """The supervisor the app published in lifespan state, if any."""
    state = scope.get("state")
    if state:
        found = state.get(SUPERVISOR_STATE_KEY)
        if isinstance(found, StreamSupervisor):
            return found
    return None
