"""Event-loop lag: how late the server's event loop runs a timer, as Prometheus metrics.

A :class:`LoopLagMonitor` arms one ``call_later`` timer every ``interval`` seconds and, when
it fires, records how long after its due time it ran: the time the loop spent on other work
(a callback that blocks, thousands of callbacks in one turn, a GC pause, a starved CPU) before
it could run a ready callback. Every stream's heartbeat, send timeout and producer poll waits
behind the same loop, so a lag of ``L`` seconds delays all of them by about ``L``.

Metrics, in the registry given (the app's):

* ``mianzhang_event_loop_lag_seconds`` (histogram, 1 ms to 10 s): one observation per tick;
* ``mianzhang_event_loop_lag_max_seconds`` (gauge): the largest lag seen since the monitor
  started.

Guarantees: one timer handle at a time (no task, no thread): at idle the cost is one callback
per ``interval``. A block of ``B`` seconds shows up as a lag of at least ``B - interval`` in
the next tick. :meth:`LoopLagMonitor.aclose` cancels the armed timer; nothing of the monitor
is left in the loop afterwards, and a tick that was already due re-arms nothing. One monitor
per app, hence per process (per uvicorn worker).
"""

from __future__ import annotations

import asyncio
from typing import Self

from prometheus_client import CollectorRegistry, Gauge, Histogram

from .._tasks import AsyncResource

__all__ = ["LAG_BUCKETS", "LoopLagMonitor"]

# fmt: off
LAG_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
# fmt: on


class LoopLagMonitor(AsyncResource):
    """Measures the running loop's lag every ``interval`` seconds between ``async with``
    entry (or :meth:`start`) and :meth:`aclose`; see the module docstring."""

    def __init__(self, registry: CollectorRegistry, *, interval: float = 0.25) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.interval = interval
        self.lag = Histogram(
            "mianzhang_event_loop_lag_seconds",
            "How late the event loop ran a timer due every interval (a blocked loop delays "
            "every stream's heartbeat and send by as much)",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.max_lag = Gauge(
            "mianzhang_event_loop_lag_max_seconds",
            "Largest event-loop lag seen since this process started serving",
            registry=registry,
        )
        self._largest = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    @property
    def running(self) -> bool:
        """Whether a timer of the monitor is armed in the loop."""
        return self._handle is not None

    @property
    def largest(self) -> float:
        """The largest lag seen so far (seconds), as the gauge shows it."""
        return self._largest

    def start(self) -> None:
        """Arm the first timer in the running loop (once)."""
        if self._loop is not None:
            raise RuntimeError("the loop-lag monitor has been started already")
        self._loop = loop = asyncio.get_running_loop()
        self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        # the loop's own clock (uvloop's is the time cached at the iteration's start, which
        # its timers also count from), so a late tick is measured against the timers' base
        self._due = loop.time() + self.interval
        self._handle = loop.call_later(self.interval, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._handle is None:  # closed meanwhile: stay disarmed
            return
        # a timer may run early by the clock's grain; rounded to 1 us so that uvloop's whole
        # milliseconds (1 ms late is its timers' usual grain) fall in their bucket, not above
        lag = round(max(0.0, loop.time() - self._due), 6)
        self.lag.observe(lag)
        if lag > self._largest:
            self._largest = lag
            self.max_lag.set(lag)
        self._arm(loop)

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def aclose(self) -> None:
        """Cancel the armed timer: no tick runs or re-arms afterwards. Idempotent."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()
