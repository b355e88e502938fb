"""Request-bound producers: hold a stream's producer lease while a block of code runs.

:class:`~mianzhang.log.ProducerRunner` runs producers that outlive the request that started
them. Some producers *are* a request: an upload publishing its own progress produces its
``upload:{id}`` stream from the request's task, and ends when the request does. A
:class:`LeaseHolder` gives such a block the liveness contract of every other producer
(``_protocol.py``, "Producer leases"), with the same lease and the same ttl::

    async with LeaseHolder(log, stream, ttl=5.0, entries=lost, final=True):
        ...  # append to ``stream``; usually end it (close) before leaving

Guarantees:

* Entering takes the lease of ``stream`` (which must exist and be OPEN) for a fresh owner,
  storing ``entries`` (what ends the stream if the producer is lost), and starts one renewal
  task, owned by the holder, that renews it every ``ttl / 3`` seconds. If the lease cannot be
  taken (the stream is not open, or another producer holds a live final lease) the block runs
  without one: ``held`` is False. Backend errors while taking it propagate (``LogError``).
* Leaving (normally, by an exception, or cancelled) cancels and awaits the renewal task, then
  releases the lease *without* applying it (shielded, bounded by ``ttl``). A block that closed
  its stream has nothing left to release (closing drops the lease); a block that leaves its
  stream open leaves it open with no lease: nobody produces it, nothing ends it by expiry
  (sweepers and followers only act on leases), and the next producer may take it.
* If the process dies inside the block (killed, cut off from the log, its loop blocked, for
  longer than ``ttl``), the lease expires and whichever instance notices first applies the
  entries, exactly once (appended; for a final lease the stream ends FAILED). Readers learn of
  it within the log's bound (ttl plus the backend's check delay).
* A renewal that finds the lease lost (the stream ended, or was taken over, elsewhere) cancels
  the task that entered the block, with reason ``"producer_lost"``; leaving then raises
  :class:`~mianzhang.LeaseLost` instead of that cancellation, so the block does not go on
  producing for a stream whose readers were told it stopped. (Like ``asyncio.timeout``, only a
  cancellation the holder caused is turned into ``LeaseLost``; any other propagates.)

Each holder renews its one stream (one small call every ``ttl / 3`` seconds), where a
``ProducerRunner`` renews all of its producers in one call: fine for requests, each of which
already costs far more than that.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from types import TracebackType

from .._errors import LeaseLost, LogError
from .._tasks import cancel_and_wait
from ._producer_end import complete_shielded
from ._protocol import PRODUCER_LOST, EventLog, LogEntry

__all__ = ["LeaseHolder"]

logger = logging.getLogger("mianzhang.producers")


class LeaseHolder:
    """Holds the producer lease of ``stream`` while an ``async with`` block runs (see the
    module docstring). ``owner`` defaults to a fresh ``"requests:<hex>"``."""

    def __init__(
        self,
        log: EventLog,
        stream: str,
        *,
        ttl: float,
        entries: Sequence[LogEntry] = (),
        final: bool = True,
        owner: str | None = None,
    ) -> None:
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0, not {ttl!r}")
        self.log = log
        self.stream = stream
        self.ttl = ttl
        self.entries = tuple(entries)
        self.final = final
        self.owner = owner or f"requests:{secrets.token_hex(8)}"
        self.held = False  # the lease was taken on entry
        self.lost = False  # a renewal found it lost (the block was cancelled)
        self._task: asyncio.Task[object] | None = None  # the block's task
        self._renewer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LeaseHolder:
        if self._renewer is not None:
            raise RuntimeError("a LeaseHolder is entered once")
        self._task = asyncio.current_task()
        self.held = await self.log.lease(
            self.stream, self.owner, ttl=self.ttl, entries=self.entries, final=self.final
        )
        if not self.held:
            logger.warning("%r is produced without a lease (not open, or held)", self.stream)
            return self
        self._renewer = asyncio.create_task(self._renew(), name=f"lease:{self.stream}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._renewer is not None:
            await cancel_and_wait(self._renewer)
        if self.held:
            await complete_shielded(self._release())
        if self.lost and self._task is not None:
            self._task.uncancel()
            if isinstance(exc, asyncio.CancelledError):
                raise LeaseLost(self.stream) from exc

    async def _release(self) -> None:
        """Drop the lease without applying it (a closed stream has none left)."""
        try:
            async with asyncio.timeout(self.ttl):
                await self.log.release_lease(self.stream, self.owner)
        except (LogError, TimeoutError) as exc:  # it expires by itself: readers are told
            logger.warning("cannot release the lease of %r: %r", self.stream, exc)

    async def _renew(self) -> None:
        """Renew every ``ttl / 3`` seconds until cancelled, or until the lease is lost (then
        cancel the block). A failed renewal is retried at the next turn."""
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                gone = await self.log.renew_leases(self.owner, [self.stream], ttl=self.ttl)
            except LogError as exc:
                logger.warning("cannot renew the lease of %r: %r", self.stream, exc)
                continue
            if gone:
                logger.warning("the lease of %r was lost: stopping its producer", self.stream)
                self.lost = True
                if self._task is not None:
                    self._task.cancel(PRODUCER_LOST)
                return
