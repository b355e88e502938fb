"""Reader presence across processes: how many ``follow`` iterators are open on a stream.

Each ``RedisEventLog`` instance keeps its local counts in memory (changed synchronously when a
follower starts or ends, so it is exact even on cancellation) and publishes them per stream:
a sorted set ``rdr`` (instance -> expiry in server milliseconds) and a hash ``rdc`` (instance
-> count). Changes are written as soon as the publisher task gets to them; every live count is
re-published every ``ttl / 3`` seconds, so a process that dies without cleaning up drops out
of the total ``ttl`` seconds later. ``readers()`` writes this instance's pending changes first
(read-your-writes locally) and sums the live counts of all instances.

Ownership: the publisher task starts on the first change and is cancelled and awaited by
:meth:`Presence.aclose`, which also withdraws this instance's counts (best effort, bounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ._errors import REDIS_ERRORS
from ._keys import StreamKeys
from ._retry import Backoff, stop_task
from ._scripts import PRESENCE

__all__ = ["Presence"]

logger = logging.getLogger("mianzhang.log.redis")


class Presence:
    """This instance's reader counts, published per stream (see the module docstring)."""

    def __init__(
        self,
        commands: Any,
        instance: str,
        keys: Callable[[str], StreamKeys],
        ttl: float,
        backoff: Backoff,
        timeout: float,
    ) -> None:
        self._timeout = timeout
        self._commands = commands
        self._instance = instance
        self._keys = keys
        self._ttl_ms = max(1, int(ttl * 1000))
        self._refresh = ttl / 3
        self._backoff = backoff
        self._counts: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def change(self, stream: str, delta: int) -> None:
        """Adjust this instance's count for ``stream`` now; publish it soon."""
        if self._closed:
            return
        count = self._counts.get(stream, 0) + delta
        self._counts[stream] = count
        self._dirty.add(stream)
        self._wake.set()
        if self._task is None or self._task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # a follower finalized outside any loop: the count expires
                return
            self._task = loop.create_task(self._run(), name=f"mianzhang-presence:{self._instance}")

    async def flush(self, *, everything: bool = False) -> None:
        """Publish pending changes (``everything``: all live counts too). Raises redis errors."""
        async with self._lock:
            streams = set(self._counts) if everything else set(self._dirty)
            streams |= self._dirty
            if not streams:
                return
            self._dirty -= streams
            try:
                async with (
                    asyncio.timeout(self._timeout),
                    self._commands.pipeline(transaction=False) as pipe,
                ):
                    for stream in streams:
                        keys = self._keys(stream)
                        count = self._counts.get(stream, 0)
                        # EVAL, not EVALSHA: pipelines do not load scripts (on a cluster,
                        # neither does a promoted replica)
                        pipe.eval(
                            PRESENCE,
                            2,
                            keys.readers,
                            keys.reader_counts,
                            self._instance,
                            count,
                            self._ttl_ms,
                        )
                    await pipe.execute()
            except BaseException:
                self._dirty |= streams
                raise
            for stream in streams:
                if self._counts.get(stream) == 0:
                    del self._counts[stream]

    async def _run(self) -> None:
        delays = self._backoff.delays()
        next_refresh = time.monotonic() + self._refresh
        while True:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_refresh - time.monotonic())):
                    await self._wake.wait()
            self._wake.clear()
            everything = time.monotonic() >= next_refresh
            try:
                await self.flush(everything=everything)
            except REDIS_ERRORS as exc:
                logger.debug("presence publish failed: %r", exc)
                self._wake.set()  # retry after a backoff
                await asyncio.sleep(next(delays))
                continue
            delays = self._backoff.delays()
            if everything:
                next_refresh = time.monotonic() + self._refresh

    async def aclose(self, grace: float = 1.0) -> None:
        """Stop publishing and withdraw this instance's counts (best effort)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)
        for stream in self._counts:
            self._counts[stream] = 0
            self._dirty.add(stream)
        with contextlib.suppress(*REDIS_ERRORS):
            async with asyncio.timeout(grace):
                await self.flush()
