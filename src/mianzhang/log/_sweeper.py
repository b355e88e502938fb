"""The lease sweeper: ends the streams of dead producers that nobody is reading.

Followers notice an expired lease themselves (``_protocol.py``, "Producer leases"); the sweeper
covers the streams without followers, so that their state says ``failed`` (``info``, the
stream routes) within about ``ttl + interval`` of the producer's death even if nobody reads
them, and a later reader finds them ended. Every instance may run one: applying a lease is
atomic, so several sweepers end each stream once.
"""

from __future__ import annotations

import asyncio
import logging

from .._errors import LogError
from .._tasks import AsyncResource, cancel_and_wait
from ._protocol import EventLog

__all__ = ["LeaseSweeper"]

logger = logging.getLogger("mianzhang.log")


class LeaseSweeper(AsyncResource):
    """Calls ``log.sweep_leases()`` every ``interval`` seconds, in one task owned here:
    started by ``async with`` (or :meth:`start`), cancelled and awaited by :meth:`aclose`.
    A sweep that fails (the backend unreachable) is logged and retried at the next round."""

    def __init__(self, log: EventLog, *, interval: float) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0, not {interval!r}")
        self.log = log
        self.interval = interval
        self.applied = 0  # leases this sweeper applied
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="leases:sweep")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.applied += await self.log.sweep_leases()
            except LogError as exc:
                logger.warning("lease sweep failed: %r", exc)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def __aenter__(self) -> LeaseSweeper:
        self.start()
        return self
