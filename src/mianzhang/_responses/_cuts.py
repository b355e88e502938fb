"""Cuts in batches: streams cut together are torn down a few per event-loop iteration.

Readers that stop reading together (a thousand tabs behind one dead network, a crowd of
stalled clients) reach their ``send_timeout`` together, and each cut stream then unwinds its
iterator, resets its connection and leaves the server (measured: a thousand at once held the
loop about 90 ms, and every healthy reader's next event waited that long). A cut stream takes
a *cut turn* before its teardown: at most ``CUT_BATCH`` turns are given per loop iteration, so
the readers that keep up are served between batches; the total work is the same.

Guarantees: a stream waiting for its turn gets it after at most one iteration per
``CUT_BATCH`` streams queued ahead of it; one cancelled while waiting leaves the queue without
using a turn (and goes on with its teardown at once, in its ``finally``); the queue lives as
long as its event loop. A stream alone gets its turn without waiting.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ._loop_local import loop_local

__all__ = ["CUT_BATCH", "Cuts", "loop_cuts"]

CUT_BATCH = 64
"""Cut streams torn down in one loop iteration, at most."""


class Cuts:
    """The cut-turn queue of one event loop. Invariant: while anyone waits, a grant pass is
    scheduled."""

    __slots__ = ("_given", "_waiters")

    def __init__(self) -> None:
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._given = 0  # turns given in this iteration (reset by the grant pass)

    async def take(self) -> None:
        """Return when this cut stream may be torn down (see the module docstring)."""
        loop = asyncio.get_running_loop()
        if self._given == 0 and not self._waiters:
            loop.call_soon(self._grant, loop)
        if self._given < CUT_BATCH and not self._waiters:
            self._given += 1
            return
        waiter = loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def _grant(self, loop: asyncio.AbstractEventLoop) -> None:
        """Once per iteration while cuts wait: the next batch. (The loop is an argument: the
        RunVar holding this queue is keyed weakly by the loop.)"""
        self._given = 0
        waiters = self._waiters
        while waiters and self._given < CUT_BATCH:
            waiter = waiters.popleft()
            if not waiter.done():  # one cancelled while waiting is skipped
                waiter.set_result(None)
                self._given += 1
        if waiters or self._given:
            loop.call_soon(self._grant, loop)


loop_cuts = loop_local("mianzhang.cuts", Cuts)
"""The cut-turn queue of the running event loop (created on first use)."""
