"""Producer leases of the memory log (the contract: ``_protocol.py``, "Producer leases").

A lease is a deadline on the event loop's monotonic clock, with the entries that end the
stream if it passes. Each leased stream has one timer handle, armed at the deadline: renewing
only moves the deadline (no timer is rescheduled per renewal); when the timer fires early it
re-arms itself at the new deadline, and when the deadline has really passed the lease is
applied (its entries appended, the stream ended FAILED for a final lease) at once, so the
stream's followers wake within the same loop iteration. Nothing here costs anything per
append or per delivered event.

What "dies" means in one process: the owner stopped renewing while the stream is open.
:class:`~mianzhang.log.ProducerRunner` renews a producer's lease only while the producer's task
is running, so a task that ended without ending its stream (its coroutine closed or destroyed,
the end of the stream lost to a bug) loses its lease ``ttl`` seconds later. A loop blocked for
longer than ``ttl`` does not count as a death: before applying a lease that the timer (or a
sweep) found expired, the loop runs two more iterations (the owner's renewal, due at the same
moment, runs first) and the deadline is checked again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._memory_stream import MemoryStream
from ._protocol import LogEntry, StreamState

__all__ = ["End", "MemoryLease", "apply", "check", "release", "renew", "take"]

End = Callable[[MemoryStream, StreamState], None]
"""The log's synchronous end of a stream (state, wake-up, expiry timer)."""

_SETTLE_HOPS = 2  # loop iterations run before an expired lease is applied (see docstring)


@dataclass(slots=True)
class MemoryLease:
    """One stream's lease: ``owner``, ``deadline`` (``time.monotonic``), what to append when
    it expires, and whether that ends the stream (``final``)."""

    owner: str
    deadline: float
    entries: tuple[LogEntry, ...]
    final: bool
    timer: asyncio.Handle | None = None

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def take(
    found: MemoryStream,
    owner: str,
    ttl: float,
    entries: Sequence[LogEntry],
    final: bool,
    end: End,
) -> bool:
    """:meth:`EventLog.lease` on an existing stream."""
    if found.state is not StreamState.OPEN:
        return False
    held = found.lease
    now = time.monotonic()
    if held is not None and held.owner != owner:
        if held.final and held.deadline > now:
            return False
        apply(found, end)  # an expired lease, or a resumable producer taken over
        if found.state is not StreamState.OPEN:
            return False
    if found.lease is not None:
        found.lease.cancel()
    lease = MemoryLease(owner, now + ttl, tuple(entries), final)
    found.lease = lease
    _arm(found, lease, end)
    return True


def renew(found: MemoryStream | None, owner: str, ttl: float) -> bool:
    """Extend ``owner``'s lease; False if the stream or the lease is no longer ``owner``'s."""
    if found is None or found.state is not StreamState.OPEN:
        return False
    lease = found.lease
    if lease is None or lease.owner != owner:
        return False
    lease.deadline = time.monotonic() + ttl
    return True


def release(found: MemoryStream, owner: str, apply_it: bool, end: End) -> bool:
    """Drop ``owner``'s lease (applying it first with ``apply_it``)."""
    lease = found.lease
    if lease is None or lease.owner != owner:
        return False
    if apply_it and found.state is StreamState.OPEN:
        apply(found, end)
    else:
        lease.cancel()
        found.lease = None
    return True


async def check(found: MemoryStream, end: End) -> float | bool:
    """:meth:`EventLog.expire_lease`: apply an expired lease (after letting its owner renew
    it, see the module docstring) and return True; else the seconds it has left, or False
    when there is none (or the stream is not open)."""
    lease = found.lease
    if lease is None or found.state is not StreamState.OPEN:
        return False
    if lease.deadline > time.monotonic():
        return lease.deadline - time.monotonic()
    for _ in range(_SETTLE_HOPS):
        await asyncio.sleep(0)
    if found.lease is not lease or found.state is not StreamState.OPEN:
        return False  # released, applied or ended meanwhile
    left = lease.deadline - time.monotonic()
    if left > 0:
        return left  # renewed meanwhile
    apply(found, end)
    return True


def apply(found: MemoryStream, end: End) -> None:
    """Append the lease's entries; end the stream FAILED for a final lease. Exactly once: the
    lease is removed first."""
    lease = found.lease
    if lease is None:
        return
    lease.cancel()
    found.lease = None
    for entry in lease.entries:
        found.add(entry.data, entry.event)
    if lease.final:
        end(found, StreamState.FAILED)


def _arm(found: MemoryStream, lease: MemoryLease, end: End) -> None:
    loop = asyncio.get_running_loop()
    delay = max(0.0, lease.deadline - time.monotonic())
    lease.timer = loop.call_later(delay, _fire, found, lease, end, 0)


def _fire(found: MemoryStream, lease: MemoryLease, end: End, hops: int) -> None:
    """The lease's timer: re-arm at a moved deadline; apply once really expired."""
    lease.timer = None
    if found.lease is not lease or found.state is not StreamState.OPEN or found.deleted:
        return
    if lease.deadline > time.monotonic():
        _arm(found, lease, end)
    elif hops < _SETTLE_HOPS:
        loop = asyncio.get_running_loop()
        lease.timer = loop.call_soon(_fire, found, lease, end, hops + 1)
    else:
        apply(found, end)
