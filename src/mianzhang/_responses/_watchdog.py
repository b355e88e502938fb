"""One timer per check interval and event loop for the acknowledgement watchdogs of all its
streams (``_connection``).

A stream whose bytes are unacknowledged is checked every check interval until the peer has
them all. A timer of its own per stream (a ``TimerHandle``, uvloop's timer and the bound
method it calls) costs about 0.5 KB while armed, and an idle stream's heartbeat arms it after
every ping: with the default 30 s ``send_timeout`` (checks every 5 s) and a ping every 5 to
15 s, most idle streams held one (measured with ``bench/fanout_trace.py memory``: 543 bytes
per idle ``/v1/streams`` reader that had been sent one event). Here the streams watched with
the same interval form a *round*: one timer, re-armed while anyone is watched; a stream costs
a dictionary entry while watched and nothing otherwise.

Guarantees: a stream added to a round is checked (``check(now)``) every interval until its
check answers False or it is removed, in an empty context (a check that needs its stream's
context, to log with its ids, runs its own); its first check comes at most one interval after it
was added (earlier when the round's timer is already armed). Removing it drops every
reference the round holds to it, also from within another stream's check. The rounds live
as long as their event loop (an :class:`anyio.lowlevel.RunVar`), no longer.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Protocol

from ._loop_local import loop_local

__all__ = ["Watchdogs", "Watched", "loop_watchdogs"]


class Watched(Protocol):
    """A stream's guard as the watchdog sees it."""

    def check(self, now: float) -> bool:
        """One check at loop time ``now``; False: no more checks until added again."""
        ...


class _Round:
    """The streams watched every ``interval`` seconds, and their one timer."""

    __slots__ = ("_handle", "_watched", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._watched: dict[Watched, None] = {}
        self._handle: asyncio.TimerHandle | None = None

    def add(self, guard: Watched, loop: asyncio.AbstractEventLoop) -> None:
        self._watched[guard] = None
        if self._handle is None:
            self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        # an empty context: the timer serves every stream, it must not carry the context
        # (request ids in log records) of the one that happened to arm it
        empty = contextvars.Context()  # its own: a Context is entered by one thread at a time
        self._handle = loop.call_later(self.interval, self._fire, loop, context=empty)

    def remove(self, guard: Watched) -> None:
        self._watched.pop(guard, None)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Check every watched stream; arm again while any is left. (The loop is an argument,
        not an attribute: the RunVar holding this is keyed weakly by the loop.)"""
        self._handle = None
        now = loop.time()
        watched = self._watched
        for guard in list(watched):
            if guard in watched and not guard.check(now):
                watched.pop(guard, None)
        if watched and self._handle is None:
            self._arm(loop)


class Watchdogs:
    """The watchdog rounds of one event loop, one per check interval."""

    __slots__ = ("_rounds",)

    def __init__(self) -> None:
        self._rounds: dict[float, _Round] = {}

    def watch(self, guard: Watched, interval: float) -> None:
        """Check ``guard`` every ``interval`` seconds (see the module docstring)."""
        found = self._rounds.get(interval)
        if found is None:
            found = self._rounds[interval] = _Round(interval)
        found.add(guard, asyncio.get_running_loop())

    def unwatch(self, guard: Watched, interval: float) -> None:
        """No more checks of ``guard`` (it may not be watched)."""
        found = self._rounds.get(interval)
        if found is not None:
            found.remove(guard)


loop_watchdogs = loop_local("mianzhang.watchdogs", Watchdogs)
"""The watchdog rounds of the running event loop (created on first use)."""
