"""Followers notice a dead producer: the lease check of idle watched streams.

One :class:`LeaseProbe` per watcher (so per log instance), shared by every local follower of
every stream: every ``interval`` seconds it looks at the watched open streams (no Redis call)
and checks the producer's lease of those that have received nothing for ``idle`` seconds
(and of each stream once when it starts being watched here: a reader arriving after its
producer died learns it at once), all in one pipelined round trip (``LEASE_CHECK``: the
atomic check-and-end). A stream whose lease has expired is ended there and then by this
instance (its entries and end marker wake the followers through the watcher, like any
append); a live lease is checked again when it would expire; a stream without a lease (a
channel, a job waiting in its queue) is checked again after a doubling delay (``idle`` up to
``max_wait``), reset by its next event.

Cost: nothing per appended or delivered event (the probe compares each watch's last seq with
the one it saw on its previous visit); a stream whose producer is alive but silent costs one
small script about every lease ``ttl``. Bound: a follower learns of a dead producer within
``interval`` plus one round trip after its lease expired, once the stream has been idle for
``idle`` seconds (which ``ttl`` always exceeds when ``idle <= ttl``: the producer renews every
``ttl / 3``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..._errors import LogError
from ._keys import StreamKeys

if TYPE_CHECKING:
    from ._watch import Watch

__all__ = ["CheckFn", "LeaseProbe"]

logger = logging.getLogger("mianzhang.log.redis")

CheckFn = Callable[[Sequence[StreamKeys]], Awaitable[list[int]]]
"""``check(streams)``: the ms each stream's live lease has left, or a negative code."""

_MARGIN = 0.005  # seconds added to a lease's remaining time before it is checked again


@dataclass(slots=True)
class _Idle:
    seen: tuple[str | None, int]  # the watch's (epoch, last seq) at the last visit
    due: float  # when to check (monotonic)
    wait: float  # the delay after a check that found no lease


class LeaseProbe:
    """The lease check of one watcher's idle streams (see the module docstring)."""

    def __init__(
        self,
        watches: dict[str, Watch],
        check: CheckFn,
        *,
        idle: float,
        interval: float,
        max_wait: float = 60.0,
    ) -> None:
        self._watches = watches  # the watcher's own dict: read, never written here
        self._check = check
        self._idle_after = idle
        self._interval = interval
        self._max_wait = max(max_wait, idle)
        self._state: dict[str, _Idle] = {}

    async def run(self) -> None:
        """Visit the watched streams every ``interval`` seconds until none is left."""
        while self._watches:
            await asyncio.sleep(self._interval)
            due = self._due(time.monotonic())
            if not due:
                continue
            try:
                results = await self._check([watch.keys for watch in due])
            except LogError as exc:  # Redis unreachable: the watcher reports that
                logger.debug("lease check failed: %r", exc)
                continue
            self._schedule(due, results, time.monotonic())
        self._state.clear()

    def _due(self, now: float) -> list[Watch]:
        """The watches idle past their check time; note activity of the others."""
        due = []
        state = self._state
        for key in [key for key in state if key not in self._watches]:
            del state[key]
        for key, watch in self._watches.items():
            if watch.closed or watch.error is not None or watch.epoch is None:
                state.pop(key, None)
                continue
            seen = (watch.epoch, watch.last)
            idle = state.get(key)
            if idle is None:  # newly watched: its producer may have died long ago
                state[key] = _Idle(seen, now, self._idle_after)
            elif idle.seen != seen:
                state[key] = _Idle(seen, now + self._idle_after, self._idle_after)
            elif now >= idle.due:
                due.append(watch)
        return due

    def _schedule(self, watches: list[Watch], results: list[int], now: float) -> None:
        for watch, left in zip(watches, results, strict=True):
            idle = self._state.get(watch.keys.log)
            if idle is None:
                continue
            if left >= 0:  # a live lease: look again when it would expire
                idle.due = now + left / 1000 + _MARGIN
                idle.wait = self._idle_after
            else:  # no lease (or just applied: the watcher delivers the end)
                idle.due = now + idle.wait
                idle.wait = min(2 * idle.wait, self._max_wait)
