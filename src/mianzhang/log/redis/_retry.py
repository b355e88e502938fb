"""Retrying while Redis is unreachable: backoff delays, outage bookkeeping, stopping tasks.

Used by every loop of the Redis log that outlives one call (followers' own reads, the
watcher, presence), so they all back off the same way and give up after the same bound.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Backoff", "Outage", "stop_task"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with full jitter."""

    initial: float = 0.05
    maximum: float = 2.0

    def delays(self) -> Iterator[float]:
        """An endless series of sleep times: jittered, doubling, capped at ``maximum``."""
        delay = self.initial
        while True:
            yield random.uniform(delay / 2, delay)
            delay = min(delay * 2, self.maximum)


class Outage:
    """Since when one retry loop has been failing to reach Redis.

    ``fail()`` notes one failed attempt and says whether the outage has now lasted longer than
    ``limit`` seconds; ``end()`` notes a success and says whether it ended an outage.
    """

    __slots__ = ("limit", "since")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def fail(self) -> bool:
        """Note a failed attempt; ``True`` once the failures have lasted over ``limit``."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
            return False
        return now - self.since > self.limit

    def end(self) -> bool:
        """Note a successful attempt; ``True`` if it ended an outage."""
        ended = self.since is not None
        self.since = None
        return ended


async def stop_task(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it is done, cancelling again if a cancellation got lost
    (some libraries swallow one on Python 3.11). Exceptions other than cancellation propagate."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    if not task.cancelled():
        task.result()
