"""Upload progress published to the event log, throttled, for live progress bars.

Each upload has a stream ``upload:{id}`` whose events (type ``progress``) carry JSON::

    {"id": ID, "state": "receiving" | "paused" | "complete" | "failed",
     "received": BYTES, "total": BYTES | null, ...}

``complete`` adds ``size``, ``sha256`` and ``url``; ``failed`` adds ``error``; ``paused`` is a
tus upload whose request ended before the upload did (it resumes with another PATCH). The
stream is closed after ``complete`` or ``failed``, so followers end there.

Throttling: besides the first event of a request and the final one, a ``receiving`` event is
appended only when at least ``interval`` seconds (default 0.1) have passed since the last one
*and*, when the total is known, at least ``step`` (default 1 %) more of it has arrived. So an
upload produces at most ~100 events, and at most 10 per second.

Retention: at most ``PROGRESS_MAX_EVENTS`` events; the stream is deleted ``ttl_after_close``
seconds (setting ``files.progress_ttl``, default 600) after it closes, so a follower that
arrives late still reads how the upload ended.

Publishing never fails an upload: if the log refuses (down, closed stream), publishing stops
for this upload and a warning is logged.

Liveness (``log/_protocol.py``, "Producer leases"; ``log/_holder.py``): the request receiving an
upload is the producer of its stream. With a ``lease_ttl``, :meth:`ProgressPublisher.producing`
holds the stream's producer lease (the same lease and ttl, ``producer_lease_ttl``, as
generations and jobs) while the body is received, renewed every ``ttl / 3`` seconds, and
releases it when the request ends (after the final event, which closes the stream). If the
instance dies mid-upload, whichever instance notices first applies the lease, exactly once, and
readers learn of it within the lease ttl + 1 s:

* a plain upload (``PUT``/``POST``) cannot be resumed: its lease is final; readers get an
  ``error`` event ``{"type": "producer_lost", "message"}`` and the stream ends ``failed``;
* a tus ``PATCH`` can: its client resumes with ``HEAD`` and another ``PATCH``, on any instance.
  Its lease is not final: readers get a ``progress`` event ``{"state": "paused", "received":
  OFFSET, "reason": "producer_lost", ...}`` (``OFFSET`` is where that ``PATCH`` started: what
  was certainly stored; ``HEAD`` tells the exact offset) and the stream stays open for the next
  ``PATCH``, like a job the queue re-delivers. Between two ``PATCH``es nobody produces: a
  ``PATCH`` that ends with the upload incomplete publishes ``paused`` and releases its lease
  without ending the stream, so readers see ``paused`` and then nothing but heartbeats until the
  client resumes (or terminates the upload: ``failed``). A stream with no lease is never ended
  by expiry (sweepers and followers act on leases only): a paused upload is not a lost one.

If the lease is lost while the request still runs (this instance was cut off from the log for
longer than the ttl and another one ended the stream), the request is stopped with
:class:`~mianzhang.LeaseLost`, as a runner's producer would be.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from .._errors import LogError
from ..log import EventLog, LeaseHolder, LogEntry
from ..log._producer_end import lost_entries
from ..log._protocol import PRODUCER_LOST

__all__ = ["ProgressPublisher", "progress_stream"]

_logger = logging.getLogger("mianzhang.files")
PROGRESS_EVENT = "progress"
PROGRESS_MAX_EVENTS = 256
PROGRESS_TTL_AFTER_CLOSE = 600.0  # the default of ``files.progress_ttl``


def progress_stream(upload_id: str) -> str:
    """The event-log stream carrying the progress of upload ``upload_id``."""
    return f"upload:{upload_id}"


class ProgressPublisher:
    """Publishes one upload's progress (see the module docstring). A ``None`` log makes every
    method a no-op. ``ttl_after_close`` (seconds) is the stream's retention once closed."""

    def __init__(
        self,
        log: EventLog | None,
        upload_id: str,
        total: int | None,
        *,
        interval: float = 0.1,
        step: float = 0.01,
        ttl_after_close: float = PROGRESS_TTL_AFTER_CLOSE,
        clock: Callable[[], float] = time.monotonic,
        lease_ttl: float | None = None,
    ) -> None:
        self._log = log
        self.lease_ttl = lease_ttl
        self._created = False
        self.upload_id = upload_id
        self.stream = progress_stream(upload_id)
        self.total = total
        self.interval = interval
        self.step = step
        self.ttl_after_close = ttl_after_close
        self._clock = clock
        self._last_time: float | None = None
        self._last_received = -1
        self.published = 0

    async def _append(self, state: str, received: int, **extra: Any) -> None:
        if self._log is None:
            return
        payload = {
            "id": self.upload_id,
            "state": state,
            "received": received,
            "total": self.total,
            **extra,
        }
        try:
            await self._log.append(
                self.stream, json.dumps(payload, separators=(",", ":")), event=PROGRESS_EVENT
            )
        except LogError as exc:
            _logger.warning("upload progress for %s no longer published: %s", self.stream, exc)
            self._log = None
            return
        self.published += 1
        self._last_time = self._clock()
        self._last_received = received

    async def _create(self) -> bool:
        """Create the stream (bounded retention) once; False if there is no log (any more)."""
        if self._log is None or self._created:
            return self._log is not None
        try:
            await self._log.create(
                self.stream,
                max_events=PROGRESS_MAX_EVENTS,
                ttl_after_close=self.ttl_after_close,
            )
        except LogError as exc:
            _logger.warning("upload progress for %s not published: %s", self.stream, exc)
            self._log = None
            return False
        self._created = True
        return True

    async def start(self, received: int = 0) -> None:
        """Create the stream (bounded retention) and publish the starting position."""
        if await self._create():
            await self._append("receiving", received)

    @contextlib.asynccontextmanager
    async def producing(self, *, resumable: bool = False, received: int = 0) -> AsyncIterator[None]:
        """Hold the stream's producer lease while the block runs (see the module docstring):
        final for a plain upload, not ``resumable`` (tus), whose lost ``PATCH`` publishes
        ``paused`` at ``received``. Creates the stream first. Without a log or a
        ``lease_ttl``, or if the lease cannot be taken, the block runs without one (logged);
        :class:`~mianzhang.LeaseLost` if the lease is lost meanwhile."""
        async with contextlib.AsyncExitStack() as stack:
            if self.lease_ttl is not None and self._log is not None and await self._create():
                holder = LeaseHolder(
                    self._log,
                    self.stream,
                    ttl=self.lease_ttl,
                    entries=self._lost(resumable, received),
                    final=not resumable,
                )
                try:
                    await stack.enter_async_context(holder)
                except LogError as exc:
                    _logger.warning("upload %s runs without a producer lease: %s", self.stream, exc)
            yield

    def _lost(self, resumable: bool, received: int) -> list[LogEntry]:
        """What readers get if this request's instance dies (the module docstring)."""
        if not resumable:
            return lost_entries(self.stream, None)
        payload = {
            "id": self.upload_id,
            "state": "paused",
            "received": received,
            "total": self.total,
            "reason": PRODUCER_LOST,
        }
        return [LogEntry(json.dumps(payload, separators=(",", ":")), PROGRESS_EVENT)]

    def due(self, received: int) -> bool:
        """Whether ``received`` is worth an event now (the throttle)."""
        if self._log is None or received == self._last_received:
            return False
        if self._last_time is None:
            return True
        if self._clock() - self._last_time < self.interval:
            return False
        if self.total:
            return received - self._last_received >= self.step * self.total
        return True

    async def update(self, received: int) -> None:
        """Publish ``received`` if the throttle allows it."""
        if self.due(received):
            await self._append("receiving", received)

    async def pause(self, received: int) -> None:
        """The request ended before the upload (tus): publish where it stands."""
        await self._append("paused", received)

    async def complete(self, *, size: int, sha256: str, url: str) -> None:
        """Publish the final event and close the stream."""
        await self._append("complete", size, size=size, sha256=sha256, url=url)
        await self._close()

    async def fail(self, error: str, received: int) -> None:
        """Publish the failure and close the stream."""
        await self._append("failed", received, error=error)
        await self._close()

    async def _close(self) -> None:
        if self._log is None:
            return
        try:
            await self._log.close(self.stream)
        except LogError as exc:
            _logger.warning("could not close %s: %s", self.stream, exc)
