"""A stall timeout for a stream of chunks: one timer per ``seconds`` of activity, not per chunk.

``asyncio.timeout`` around every ``anext`` costs a timer (a heap push, a cancel, a pop) per
chunk, a quarter of the gateway's CPU per token. :class:`StallTimeout` arms one timer; each
chunk only notes when its wait started, and the timer, when it fires, re-arms itself for the
current wait's deadline unless that deadline has passed. Only time spent *waiting* for the
upstream counts (``waiting()`` / ``arrived()`` around ``anext``): time the consumer takes
(appending to the log, a slow backend) never reads as an upstream stall.

Guarantee: if one wait lasts ``seconds`` or more, the task is cancelled at that ``await`` and
the ``async with`` block raises ``TimeoutError`` (exactly as ``asyncio.timeout`` does, with
``Task.uncancel``, so a real cancellation arriving meanwhile still propagates as one). The
timer is cancelled when the block exits, however it exits.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["StallTimeout"]


class StallTimeout:
    """``async with StallTimeout(seconds) as stall:`` then ``stall.waiting()`` before and
    ``stall.arrived()`` after each ``await anext(...)`` (see the module docstring)."""

    __slots__ = ("_fired", "_handle", "_loop", "_seconds", "_since", "_task", "_waiting")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._since = 0.0
        self._waiting = False
        self._fired = False
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[object] | None = None

    async def __aenter__(self) -> StallTimeout:
        self._loop = loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._handle = loop.call_at(loop.time() + self._seconds, self._check)
        return self

    def waiting(self) -> None:
        """A wait for the next chunk starts now."""
        assert self._loop is not None
        self._since = self._loop.time()
        self._waiting = True

    def arrived(self) -> None:
        """The awaited chunk came."""
        self._waiting = False

    def _check(self) -> None:
        loop = self._loop
        assert loop is not None and self._task is not None
        now = loop.time()
        due = self._since + self._seconds if self._waiting else now + self._seconds
        if self._waiting and now >= due:
            self._handle = None
            self._fired = True
            self._task.cancel()
            return
        self._handle = loop.call_at(due, self._check)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._fired and exc_type is asyncio.CancelledError:
            assert self._task is not None
            if self._task.uncancel() == 0:
                raise TimeoutError from exc
