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
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from .._errors import LogError
from ..log import EventLog

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
    ) -> None:
        self._log = log
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

    async def start(self, received: int = 0) -> None:
        """Create the stream (bounded retention) and publish the starting position."""
        if self._log is None:
            return
        try:
            await self._log.create(
                self.stream,
                max_events=PROGRESS_MAX_EVENTS,
                ttl_after_close=self.ttl_after_close,
            )
        except LogError as exc:
            _logger.warning("upload progress for %s not published: %s", self.stream, exc)
            self._log = None
            return
        await self._append("receiving", received)

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
