"""The watcher on one server (or a Sentinel-managed master): one shared ``XREAD BLOCK``.

All local followers of all streams share ONE ``XREAD BLOCK`` loop on ONE dedicated connection
(named ``mz-watch:<instance>`` in ``CLIENT LIST``), which names every watched open stream
after its ``Watch.last`` and returns the new entries of all of them at once.

Adding a stream to the watched set while an ``XREAD`` is blocked "kicks" it: an entry is added
to this instance's control stream, which that ``XREAD`` includes, so it returns at once.

The shared read names every watched stream, so its cost per round trip grows with the number
of streams this process follows at once (fine for hundreds; shard processes for thousands).
Validation (every ``validate_interval`` seconds and on reconnection) reads each watched
stream's meta in one pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Unpack

from ._errors import REDIS_ERRORS
from ._retry import Outage
from ._watch import Watch, Watcher
from ._watch_options import WatchOptions

__all__ = ["XReadWatcher"]

logger = logging.getLogger("mianzhang.log.redis")


class XReadWatcher(Watcher):
    """The shared blocking reader of one server (see the module docstring)."""

    def __init__(
        self,
        *,
        commands: Any,
        blocking: Any,
        control_key: str,
        block_ms: int,
        **options: Unpack[WatchOptions],
    ) -> None:
        super().__init__(name=control_key, **options)
        self._commands = commands
        self._blocking = blocking
        self._control = control_key
        self._control_last = "0-0"
        self._block_ms = block_ms
        self._in_flight: frozenset[str] = frozenset()

    async def include(self, watch: Watch) -> None:
        """Make sure the shared read covers ``watch`` now (kick it if it is blocked without)."""
        if watch.keys.log not in self._in_flight:
            await self.kick()

    async def _changed(self, watch: Watch) -> None:
        await self.kick()

    async def kick(self) -> None:
        """Make a blocked ``XREAD`` return now (best effort: without it, within ``block_ms``)."""
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._commands.pipeline(transaction=False) as pipe,
            ):
                pipe.xadd(self._control, {"k": "1"}, maxlen=1, approximate=False)
                pipe.pexpire(self._control, max(60_000, 3 * self._block_ms))
                await pipe.execute()
        except REDIS_ERRORS as exc:  # the watcher is retrying anyway
            logger.debug("watcher kick failed: %r", exc)

    # -- the loop ---------------------------------------------------------------------------
    async def _run(self) -> None:
        outage = Outage(self._reconnect_timeout)
        delays = self._backoff.delays()
        next_check = time.monotonic() + self._validate_interval
        while True:
            if not self._watches:
                self._in_flight = frozenset()
                await self._idle.wait()
                continue
            try:
                if outage.ongoing or time.monotonic() >= next_check:
                    await self._validate()
                    next_check = time.monotonic() + self._validate_interval
                reply = await self._read_once(next_check)
            except REDIS_ERRORS as exc:
                self._in_flight = frozenset()
                self._control_last = "0-0"
                self._lost(exc, outage)
                await asyncio.sleep(next(delays))
                continue
            self._in_flight = frozenset()
            if outage.end():
                logger.warning("event log watcher reconnected to Redis")
                delays = self._backoff.delays()
            if reply:
                self._dispatch(reply)

    async def _read_once(self, next_check: float) -> Any:
        """One ``XREAD BLOCK`` over every watched open stream and the control stream,
        blocking no longer than until the next validation is due."""
        streams = {
            key: f"0-{watch.last}" for key, watch in self._watches.items() if not watch.closed
        }
        streams[self._control] = self._control_last
        self._in_flight = frozenset(streams)
        block = max(1, min(self._block_ms, int((next_check - time.monotonic()) * 1000)))
        async with asyncio.timeout(block / 1000 + self._timeout):
            return await self._blocking.xread(streams, count=self._cache_size, block=block)

    def _dispatch(self, reply: list[Any]) -> None:
        """Hand each stream's new entries to its watch (which wakes its followers)."""
        for key, entries in reply:
            if key == self._control:
                if entries:
                    self._control_last = entries[-1][0]
                continue
            watch = self._watches.get(key)
            if watch is not None and entries:
                watch.receive(entries)

    async def _validate(self) -> None:
        """Check each watched stream's meta in Redis against its watch (see ``_check``)."""
        watches = list(self._watches.values())
        if not watches:
            return
        async with (
            asyncio.timeout(self._timeout),
            self._commands.pipeline(transaction=False) as pipe,
        ):
            for watch in watches:
                pipe.hmget(watch.keys.meta, "epoch", "seq", "state", "max")
            replies = await pipe.execute()
        for watch, (epoch, seq, state, max_events) in zip(watches, replies, strict=True):
            self._check(watch, epoch, seq, state, max_events)
