"""Followers' first reads of one stream, coalesced: a subscribe storm is one Redis read.

Every follower starts with one atomic read of its stream (meta, and the events after its
position). Thousands of clients subscribing to one channel at once (a deploy, a page opened by
everyone) would send thousands of identical reads, queue behind the connection pool and time
out (measured: 10,000 subscribers opened against two instances, some of them answered 503
``redis: TimeoutError`` at their first read). :class:`FirstReads` makes concurrent first reads
with the same arguments (stream, epoch, position, count) share one read in flight.

Why this is exact: a follower's position after its first read comes from the read itself
(``Snapshot.last``), and every event appended after the read is delivered by the shared watch
and later reads; a follower that joins a read begun a moment before it asked is served as if
it had subscribed that moment earlier: nothing is missed, nothing repeated. Only first reads
are shared (a catching-up read must begin after the notification that asked for it).

Ownership: the read in flight is a task this object owns: a follower cancelled while it waits
leaves it running for the others (``shield``); every waiter gets its result or its exception;
:meth:`aclose` cancels and awaits what is left.
"""

from __future__ import annotations

import asyncio
import functools

from ._follower import ReadFn
from ._keys import StreamKeys
from ._snapshot import Snapshot

__all__ = ["FirstReads"]

_Key = tuple[str, str, int, int]


class FirstReads:
    """Coalesces identical first reads (see the module docstring) over ``read``."""

    __slots__ = ("_inflight", "_read")

    def __init__(self, read: ReadFn) -> None:
        self._read = read
        self._inflight: dict[_Key, asyncio.Task[Snapshot | None]] = {}

    async def read(self, keys: StreamKeys, epoch: str, after: int, count: int) -> Snapshot | None:
        """``read(keys, epoch, after, count)``, shared with the callers asking the same now."""
        key = (keys.log, epoch, after, count)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._read(keys, epoch, after, count))
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._done, key))
        return await asyncio.shield(task)

    def _done(self, key: _Key, task: asyncio.Task[Snapshot | None]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # delivered to the waiters through their shield: retrieved here

    async def aclose(self) -> None:
        """Cancel and await the reads in flight."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
