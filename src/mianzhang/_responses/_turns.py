"""Fair turns for busy streams: one full batch per event-loop iteration.

A producer that could go on producing at once (a fast iterator, a log reader catching up) takes
a *turn* before each batch of ``max_buffer`` bytes. One turn is granted per loop iteration,
first come first served; a producer alone on its loop takes its turn without waiting.

Why: the event loop polls its sockets once per iteration, and uvloop accepts only one pending
connection per iteration. If every bulk stream produced a full batch in every iteration, an
iteration would grow with the number of busy streams (1,000 streams x 64 KiB is hundreds of
milliseconds), and pending connections, health checks and new streams' first events would wait
for seconds. With turns an iteration stays about one batch long: the total work is the same,
only its order changes (``bench/sse_peers.py`` S2, 1,000 streams starting at once: first-event
p99 went from 1.05 s to 0.55-0.58 s).

Guarantees: a waiting producer gets its turn after at most one iteration per producer queued
ahead of it; a producer cancelled while waiting leaves the queue without using a turn; other
threads get the GIL at least once per switch interval while turns keep the loop busy (a sync
endpoint's wait under bulk load: 5 ms median, against 170 ms with no turns at all). The queue
lives as long as its event loop (an :class:`anyio.lowlevel.RunVar`), no longer.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque

from ._loop_local import loop_local

__all__ = ["Turns", "loop_turns"]


class Turns:
    """The turn queue of one event loop. Invariant: while anyone waits, a grant pass is
    scheduled on the loop, so waiters cancelled meanwhile leave the queue at the next pass."""

    __slots__ = ("_granted", "_next_handoff", "_waiters")

    def __init__(self) -> None:
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._granted = False  # a turn was given out in this iteration
        self._next_handoff = 0.0  # loop time of the next GIL hand-off (see _grant_next)

    @property
    def contended(self) -> bool:
        """Some producer waits for a turn."""
        return bool(self._waiters)

    def _grant_next(self, loop: asyncio.AbstractEventLoop) -> None:
        """Runs once per iteration while turns are in use: gives the next waiter its turn.
        (The loop is an argument, not an attribute: the RunVar holding this queue is keyed
        weakly by the loop, which a reference from here would keep alive forever.)"""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # one cancelled while waiting is skipped
                waiter.set_result(None)
                loop.call_soon(self._grant_next, loop)
                now = loop.time()
                if now >= self._next_handoff:
                    # Hand the GIL to other threads once per switch interval while turns keep
                    # the loop busy. A thread waiting for the GIL restarts its 5 ms timer each
                    # time the holder releases it briefly, as the loop does at every poll; with
                    # iterations this short it would never ask for a switch and starve
                    # (thread-pool work, sync endpoints: 0.6 s median, 2.2 s max measured).
                    self._next_handoff = now + sys.getswitchinterval()
                    time.sleep(0)
                return
        self._granted = False

    async def take(self) -> None:
        """Return when it is this producer's turn: at once if nobody else had one in this
        iteration, else after the producers queued ahead (one per iteration)."""
        loop = asyncio.get_running_loop()
        if not self._granted:
            self._granted = True
            loop.call_soon(self._grant_next, loop)
            return
        waiter = loop.create_future()
        self._waiters.append(waiter)
        await waiter


loop_turns = loop_local("mianzhang.turns", Turns)
"""The turn queue of the running event loop (created on first use)."""
