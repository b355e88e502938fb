"""Producer leases on Redis: taking, renewing, releasing, checking and sweeping them.

The scripts are in ``_lease_scripts.py`` (one atomic step each, in the stream's slot). Besides
the per-stream lease hash, every lease taken or renewed is scored in the sorted set
``<prefix>leases`` (member: the stream name, score: the expiry in the renewing instance's
clock, in ms). The set is only a hint for :meth:`RedisLeases.sweep`, which finds leases due by
it and checks each with the atomic script, which decides by Redis's clock. A member whose
stream ended (or whose lease is gone) is removed when the sweep meets it; one whose lease is
still live is re-scored at its real expiry. On a cluster the set is one key in one slot,
written with single-key commands only.

Round trips: taking a lease is one (the script and the ``ZADD`` pipelined); renewing all the
leases of one owner is one per round (per cluster node: the scripts and one ``ZADD``
pipelined); a sweep is one read of the set plus one pipelined round of checks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..._errors import StreamNotFound
from .._common import new_epoch
from .._protocol import LogEntry
from ._errors import backend_errors
from ._keys import StreamKeys
from ._lease_scripts import LEASE, LEASE_CHECK, RENEW

__all__ = ["APPLIED", "NO_LEASE", "RELEASED", "LeaseMethods", "RedisLeases"]

NO_LEASE = -1
"""``LEASE_CHECK``: no lease (or not the owner's, or the stream is not open)."""
APPLIED = -2
"""``LEASE_CHECK``: this call applied the lease."""
RELEASED = -3
"""``LEASE_CHECK``: the owner's lease was dropped without applying it."""

_SWEEP_BATCH = 256


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisLeases:
    """The lease operations of one :class:`~mianzhang.log.RedisEventLog` (see the module
    docstring). ``keys`` names a stream's keys, ``wake`` its cluster wake channel (``""`` on
    one server), ``index`` the sorted set of leases."""

    def __init__(
        self,
        client: Any,
        *,
        keys: Callable[[str], StreamKeys],
        wake: Callable[[StreamKeys], str],
        index: str,
        timeout: float,
    ) -> None:
        self._client = client
        self._keys = keys
        self._wake = wake
        self._index = index
        self._timeout = timeout
        self._check = client.register_script(LEASE_CHECK)

    def _end_args(self, keys: StreamKeys) -> list[str]:
        return [new_epoch(), repr(time.time()), self._wake(keys)]

    async def take(
        self, stream: str, owner: str, ttl: float, entries: Sequence[LogEntry], final: bool
    ) -> bool:
        keys = self._keys(stream)
        args: list[Any] = [owner, _ms(ttl), "1" if final else "0", *self._end_args(keys)]
        for entry in entries:
            has = entry.event is not None
            args += ["1" if has else "0", entry.event or "", entry.data]
        with backend_errors():
            async with (
                asyncio.timeout(self._timeout),
                self._client.pipeline(transaction=False) as pipe,
            ):
                pipe.eval(LEASE, 3, keys.meta, keys.log, keys.lease, *args)
                pipe.zadd(self._index, {stream: _ms(time.time() + ttl)})
                taken, _ = await pipe.execute()
        if taken == -1:
            raise StreamNotFound(stream)
        return bool(taken == 1)

    async def renew(self, owner: str, streams: Sequence[str], ttl: float) -> set[str]:
        if not streams:
            return set()
        expiry = _ms(time.time() + ttl)
        with backend_errors():
            async with (
                asyncio.timeout(self._timeout),
                self._client.pipeline(transaction=False) as pipe,
            ):
                for stream in streams:
                    keys = self._keys(stream)
                    pipe.eval(RENEW, 2, keys.meta, keys.lease, owner, _ms(ttl))
                pipe.zadd(self._index, dict.fromkeys(streams, expiry))
                replies = await pipe.execute()
        return {s for s, kept in zip(streams, replies, strict=False) if kept != 1}

    async def release(self, stream: str, owner: str, apply: bool) -> bool:
        keys = self._keys(stream)
        args = [*self._end_args(keys), owner, "1" if apply else "0"]
        with backend_errors():
            async with asyncio.timeout(self._timeout):
                result = await self._check(keys=[keys.meta, keys.log, keys.lease], args=args)
        return int(result) in (APPLIED, RELEASED)

    async def check(self, stream: str) -> float | None:
        """``expire_lease``: ``None`` if there is no live lease (any more), else seconds."""
        [left] = await self.check_many([self._keys(stream)])
        return left / 1000 if left >= 0 else None

    async def check_many(self, streams: Sequence[StreamKeys]) -> list[int]:
        """The check-and-end of each stream, pipelined: ms left, or ``NO_LEASE`` /
        ``APPLIED``. Raises ``BackendUnavailable``."""
        if not streams:
            return []
        with backend_errors():
            async with (
                asyncio.timeout(self._timeout),
                self._client.pipeline(transaction=False) as pipe,
            ):
                for keys in streams:
                    args = [*self._end_args(keys), "", "0"]
                    pipe.eval(LEASE_CHECK, 3, keys.meta, keys.log, keys.lease, *args)
                replies = await pipe.execute()
        return [int(reply) for reply in replies]

    async def sweep(self) -> int:
        """Check the leases the index says are due; return how many this call applied."""
        now = _ms(time.time())
        with backend_errors():
            async with asyncio.timeout(self._timeout):
                due: list[str] = await self._client.zrangebyscore(
                    self._index, "-inf", now, start=0, num=_SWEEP_BATCH
                )
        if not due:
            return 0
        results = await self.check_many([self._keys(stream) for stream in due])
        gone = [s for s, r in zip(due, results, strict=True) if r < 0]
        live = {s: now + r for s, r in zip(due, results, strict=True) if r >= 0}
        with backend_errors():
            async with (
                asyncio.timeout(self._timeout),
                self._client.pipeline(transaction=False) as pipe,
            ):
                if gone:
                    pipe.zrem(self._index, *gone)
                if live:
                    pipe.zadd(self._index, live)
                await pipe.execute()
        return sum(1 for r in results if r == APPLIED)


class LeaseMethods:
    """The lease methods of :class:`~mianzhang.log.RedisEventLog` (the ``EventLog``
    protocol's), on its :class:`RedisLeases`."""

    _leases: RedisLeases

    def _check_open(self) -> None:
        raise NotImplementedError

    async def lease(
        self,
        stream: str,
        owner: str,
        *,
        ttl: float,
        entries: Sequence[LogEntry] = (),
        final: bool = True,
    ) -> bool:
        """Take (or renew) the producer lease of open ``stream`` (see the protocol)."""
        self._check_open()
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0, not {ttl!r}")
        return await self._leases.take(stream, owner, ttl, entries, final)

    async def renew_leases(self, owner: str, streams: Sequence[str], *, ttl: float) -> set[str]:
        """Extend ``owner``'s leases in one round trip; the streams whose lease it lost."""
        self._check_open()
        return await self._leases.renew(owner, streams, ttl)

    async def release_lease(self, stream: str, owner: str, *, apply: bool = False) -> bool:
        """Drop ``owner``'s lease (applying it first with ``apply``)."""
        self._check_open()
        return await self._leases.release(stream, owner, apply)

    async def expire_lease(self, stream: str) -> float | None:
        """Apply ``stream``'s lease if expired; else the seconds it has left (or ``None``)."""
        self._check_open()
        return await self._leases.check(stream)

    async def sweep_leases(self) -> int:
        """Apply the expired leases the lease index points to; how many this call applied."""
        self._check_open()
        return await self._leases.sweep()
