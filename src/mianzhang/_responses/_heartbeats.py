"""One timer per event loop for the heartbeats of all its streams.

An idle stream pings after ``ping`` seconds without body bytes. A timer of its own per stream
(a ``TimerHandle``, uvloop's timer, a bound method and its arguments) costs about 0.5 KB per
idle stream; here a stream due at loop time ``t`` is put in the bucket of the next multiple of
:data:`GRANULARITY` seconds, and one timer per loop fires for the earliest bucket. A stream
costs a dictionary entry.

Guarantees: a stream added for time ``t`` is called back (:meth:`Beating.heartbeat_due`) once,
at or after ``t`` and at most :data:`GRANULARITY` seconds after it (plus the loop's own
delay), unless removed first; removing it (``remove``) drops every reference the heartbeats
hold to it. The buckets live as long as their event loop (an
:class:`anyio.lowlevel.RunVar`), no longer; the timer is armed only while a stream waits.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

from ._loop_local import loop_local

__all__ = ["GRANULARITY", "Beating", "Heartbeats", "loop_heartbeats"]

GRANULARITY = 0.02
"""Seconds: how late a heartbeat may be, at most, for sharing one timer."""


class Beating(Protocol):
    """A stream as the heartbeats see it: the tick it waits in, and its callback."""

    heartbeat_tick: int

    def heartbeat_due(self, now: float) -> None: ...


class Heartbeats:
    """The heartbeat buckets of one event loop (see the module docstring)."""

    __slots__ = ("_buckets", "_handle", "_next")

    def __init__(self) -> None:
        self._buckets: dict[int, dict[Beating, None]] = {}  # tick -> streams due then
        self._handle: asyncio.TimerHandle | None = None
        self._next = math.inf  # the tick the timer is armed for

    def add(self, stream: Beating, when: float) -> None:
        """Call ``stream.heartbeat_due(now)`` at loop time ``when`` or shortly after."""
        tick = math.ceil(when / GRANULARITY)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = {}
        bucket[stream] = None
        stream.heartbeat_tick = tick
        if tick < self._next:
            self._arm(asyncio.get_running_loop(), tick)

    def remove(self, stream: Beating) -> None:
        """Forget ``stream`` (it may not have been added)."""
        tick = stream.heartbeat_tick
        bucket = self._buckets.get(tick)
        if bucket is not None:
            bucket.pop(stream, None)
            if not bucket:
                del self._buckets[tick]

    def _arm(self, loop: asyncio.AbstractEventLoop, tick: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._next = tick
        self._handle = loop.call_at(tick * GRANULARITY, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Call back every stream of the buckets now due, then arm for the next bucket.
        (The loop is an argument, not an attribute: the RunVar holding this is keyed weakly
        by the loop, which a reference from here would keep alive.)"""
        self._handle = None
        self._next = math.inf
        now = loop.time() + _EARLY  # a timer may fire a little early: still its bucket
        buckets = self._buckets
        for tick in sorted(t for t in buckets if t * GRANULARITY <= now):
            due = max(now, tick * GRANULARITY)  # never before the times in the bucket
            for stream in buckets.pop(tick):
                stream.heartbeat_due(due)
        if buckets and self._handle is None:
            self._arm(loop, min(buckets))


_EARLY = 1e-3

loop_heartbeats = loop_local("mianzhang.heartbeats", Heartbeats)
"""The heartbeats of the running event loop (created on first use)."""
