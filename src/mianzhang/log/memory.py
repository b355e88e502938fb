"""The in-process event log: one bounded ring per stream, followers read it by index.

Guarantees (on top of :class:`~mianzhang.log.EventLog`'s):

* Memory per stream is at most ``max_events`` events, whatever the number or speed of
  followers: there is no per-follower queue. A follower holds one integer (the next seq it
  wants), reads the ring by index at its own pace, and when it has caught up waits on the
  stream's :class:`~mianzhang.log._common.Notifier`, which one append wakes in one pass.
  Every follower receives the same stored event object (no per-follower copies).
* A follower that trimming overtakes (a slow reader lapped by ``max_events``) gets a
  ``Reset("retention")`` and continues at the oldest retained event: never a silent gap.
* Epochs are per history: a new ``MemoryEventLog`` instance, or a stream re-created after it
  was deleted, starts a new epoch, so ids from before are answered with ``Reset("epoch")``.
* Closed streams are deleted ``ttl_after_close`` seconds after :meth:`close` by a timer
  handle the log owns (cancelled by :meth:`aclose`), and lazily on access if the timer could
  not run. A follower still lagging behind a deleted stream gets ``StreamNotFound``.
* :meth:`aclose` wakes every follower, which then raises ``LogError``; later calls raise too.
* Producer leases (``_memory_leases.py``): one timer per leased stream applies an expired
  lease at its deadline, so followers get the stored entries (and the end, FAILED) within the
  loop iteration after ``ttl`` passed without a renewal.

Not shared between processes: use :class:`~mianzhang.log.RedisEventLog` for that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Sequence

from .._errors import LogError, StreamClosedError, StreamNotFound
from .._tasks import AsyncResource
from . import _memory_leases as leases
from ._common import (
    DEFAULT_IDEMPOTENCY_TTL,
    DEFAULT_MAX_EVENTS,
    DEFAULT_TTL_AFTER_CLOSE,
    LogStatistics,
    check_limit,
    check_retention,
    check_stream_name,
    final_state,
    key_ttl,
    lapped,
    resolve_after,
)
from ._fanout import Push
from ._memory_stream import MemoryStream
from ._protocol import LogEntry, LogEvent, Reset, StreamInfo, StreamState, format_id

__all__ = ["MemoryEventLog"]


class MemoryEventLog(AsyncResource):
    """:class:`~mianzhang.log.EventLog` held in this process's memory (see module docstring).

    ``max_events`` and ``ttl_after_close`` are the defaults for streams created without their
    own (``None`` here means unbounded / kept forever); ``idempotency_ttl`` the default for
    ``append(idempotency_key=...)``, of which at most ``idempotency_keys`` are remembered per
    stream. Use as ``async with MemoryEventLog()`` or call :meth:`aclose` when done.
    """

    def __init__(
        self,
        *,
        max_events: int | None = DEFAULT_MAX_EVENTS,
        ttl_after_close: float | None = DEFAULT_TTL_AFTER_CLOSE,
        idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL,
        idempotency_keys: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_retention(max_events, ttl_after_close)
        if not idempotency_ttl > 0 or idempotency_keys < 1:
            raise ValueError("idempotency_ttl must be > 0 and idempotency_keys >= 1")
        self._idempotency_ttl = idempotency_ttl
        self._idempotency_keys = idempotency_keys
        self._max_events = max_events
        self._ttl_after_close = ttl_after_close
        self._clock = clock
        self._streams: dict[str, MemoryStream] = {}
        self._closed = False

    # -- internals ------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise LogError("the event log is closed")

    def _get(self, name: str) -> MemoryStream | None:
        stream = self._streams.get(name)
        if (
            stream is not None
            and stream.expires_at is not None
            and time.monotonic() >= stream.expires_at
        ):
            self._delete(stream)
            return None
        return stream

    def _delete(self, stream: MemoryStream) -> None:
        if self._streams.get(stream.name) is stream:
            del self._streams[stream.name]
        if stream.expiry is not None:
            stream.expiry.cancel()
            stream.expiry = None
        if stream.lease is not None:
            stream.lease.cancel()
            stream.lease = None
        stream.deleted = True
        stream.ring = []
        stream.notifier.notify()

    def _create(
        self,
        name: str,
        max_events: int | None,
        ttl_after_close: float | None,
        meta: dict[str, str] | None,
    ) -> MemoryStream:
        stream = MemoryStream(
            name,
            max_events=self._max_events if max_events is None else max_events,
            ttl_after_close=self._ttl_after_close if ttl_after_close is None else ttl_after_close,
            meta=dict(meta or {}),
            created=self._clock(),
        )
        self._streams[name] = stream
        return stream

    # -- EventLog -------------------------------------------------------------------------
    async def create(
        self,
        stream: str,
        *,
        max_events: int | None = None,
        ttl_after_close: float | None = None,
        meta: dict[str, str] | None = None,
    ) -> StreamInfo:
        """Create ``stream`` if missing (``None`` retention: this log's defaults); return its
        info either way. An existing stream keeps its own retention and meta."""
        self._check_open()
        check_stream_name(stream)
        check_retention(max_events, ttl_after_close)
        found = self._get(stream)
        if found is None:
            found = self._create(stream, max_events, ttl_after_close, meta)
        return found.info()

    async def append(
        self,
        stream: str,
        data: str,
        *,
        event: str | None = None,
        idempotency_key: str | None = None,
        idempotency_ttl: float | None = None,
    ) -> str:
        """Append and return the new id; wakes every follower of the stream once. A repeated
        ``idempotency_key`` (see :class:`~mianzhang.log.EventLog`) returns the first id; this
        backend remembers at most ``idempotency_keys`` keys per stream (oldest forgotten
        first)."""
        self._check_open()
        ttl = 0.0 if idempotency_key is None else key_ttl(idempotency_ttl, self._idempotency_ttl)
        found = self._get(stream)
        if found is not None and idempotency_key is not None:
            seen = found.seen(idempotency_key, time.monotonic())
            if seen is not None:
                return format_id(found.epoch, seen)
        if found is None:
            check_stream_name(stream)
            found = self._create(stream, None, None, None)
        elif found.state is not StreamState.OPEN:
            raise StreamClosedError(stream)
        seq = found.last + 1
        event_id = format_id(found.epoch, seq)
        found.push(LogEvent(event_id, seq, data, event))
        if idempotency_key is not None:
            found.remember(idempotency_key, seq, time.monotonic() + ttl, self._idempotency_keys)
        found.notifier.notify()
        return event_id

    async def read(
        self, stream: str, after: str | None = None, *, limit: int = 1000
    ) -> tuple[Reset | None, list[LogEvent]]:
        """Up to ``limit`` retained events after ``after``; raises ``StreamNotFound``."""
        self._check_open()
        check_limit(limit)
        found = self._get(stream)
        if found is None:
            raise StreamNotFound(stream)
        reset, start = resolve_after(after, epoch=found.epoch, first=found.first, last=found.last)
        stop = min(found.last, start + limit - 1)
        return reset, [found.at(seq) for seq in range(start, stop + 1)]

    async def follow(
        self, stream: str, after: str | None = None, *, push: Push | None = None
    ) -> AsyncGenerator[LogEvent | Reset, None]:
        """Replay after ``after``, then live events, until the stream is closed (see class
        docstring for resets). Counts in :meth:`readers` from the first ``__anext__`` until the
        iterator is closed (``aclose``, exhaustion, or cancellation). ``push``: ``_fanout``."""
        self._check_open()
        found = self._get(stream)
        if found is None:
            raise StreamNotFound(stream)
        reset, next_seq = resolve_after(
            after, epoch=found.epoch, first=found.first, last=found.last
        )
        found.readers += 1
        try:
            if reset is not None:
                yield reset
            while True:
                if found.deleted:
                    raise StreamNotFound(stream)
                if self._closed:
                    raise LogError("the event log was closed while following")
                if next_seq <= found.last:
                    first = found.last - len(found.ring) + 1
                    if next_seq < first:
                        reset = lapped(found.epoch, next_seq - 1, first)
                        next_seq = first
                        yield reset
                        continue  # trimming may have moved on while the reader held the reset
                    event = found.at(next_seq)
                    next_seq += 1
                    yield event
                    continue
                if found.state is not StreamState.OPEN:
                    return
                if push is None:
                    await found.notifier.wait()
                    continue
                next_seq = await found.notifier.park(push, next_seq, _live, found)
        finally:
            found.readers -= 1

    async def close(self, stream: str, *, state: StreamState = StreamState.CLOSED) -> None:
        """Mark ``stream`` finished and drop its lease; followers end after its last event.
        Deleted ``ttl_after_close`` seconds later. Idempotent (the first final state is
        kept)."""
        self._check_open()
        state = final_state(state)
        found = self._get(stream)
        if found is None:
            raise StreamNotFound(stream)
        self._end(found, state)

    def _end(self, found: MemoryStream, state: StreamState) -> None:
        if found.state is not StreamState.OPEN:
            return
        found.state = state
        if found.lease is not None:
            found.lease.cancel()
            found.lease = None
        found.notifier.notify()
        ttl = found.ttl_after_close
        if ttl is not None:
            found.expires_at = time.monotonic() + ttl
            loop = asyncio.get_running_loop()
            found.expiry = loop.call_later(ttl, self._expire, found)

    # -- producer leases (see ``_memory_leases.py``) --------------------------------------
    def _found(self, stream: str) -> MemoryStream:
        self._check_open()
        found = self._get(stream)
        if found is None:
            raise StreamNotFound(stream)
        return found

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
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0, not {ttl!r}")
        return leases.take(self._found(stream), owner, ttl, entries, final, self._end)

    async def renew_leases(self, owner: str, streams: Sequence[str], *, ttl: float) -> set[str]:
        """Extend ``owner``'s leases; the streams whose lease it lost."""
        self._check_open()
        return {s for s in streams if not leases.renew(self._get(s), owner, ttl)}

    async def release_lease(self, stream: str, owner: str, *, apply: bool = False) -> bool:
        """Drop ``owner``'s lease (applying it first with ``apply``)."""
        self._check_open()
        found = self._get(stream)
        return found is not None and leases.release(found, owner, apply, self._end)

    async def expire_lease(self, stream: str) -> float | None:
        """Apply ``stream``'s lease if expired; else the seconds it has left (or ``None``)."""
        left = await leases.check(self._found(stream), self._end)
        return None if isinstance(left, bool) else left

    async def sweep_leases(self) -> int:
        """Apply every expired lease (the timers do this too); how many this call applied."""
        self._check_open()
        now = time.monotonic()
        due = [s for s in self._streams.values() if s.lease and s.lease.deadline <= now]
        return sum([await leases.check(found, self._end) is True for found in due])

    def _expire(self, stream: MemoryStream) -> None:
        stream.expiry = None
        self._delete(stream)

    async def info(self, stream: str) -> StreamInfo | None:
        self._check_open()
        found = self._get(stream)
        return None if found is None else found.info()

    async def readers(self, stream: str) -> int:
        """Open ``follow`` iterators on ``stream`` (this instance is the only one)."""
        self._check_open()
        found = self._get(stream)
        return 0 if found is None else found.readers

    async def aclose(self) -> None:
        """Drop every stream and cancel expiry timers; followers wake and raise ``LogError``.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        streams = list(self._streams.values())
        self._streams.clear()
        for found in streams:
            if found.expiry is not None:
                found.expiry.cancel()
                found.expiry = None
            if found.lease is not None:
                found.lease.cancel()
            found.notifier.notify()
            found.notifier.release()  # parked followers resume now, and raise

    def statistics(self) -> LogStatistics:
        """Streams, events and followers held right now (closed streams count until deleted)."""
        streams = list(self._streams.values())
        return LogStatistics(
            streams=len(streams),
            events=sum(len(found.ring) for found in streams),
            followers=sum(found.readers for found in streams),
        )


def _live(position: int, found: MemoryStream) -> list[LogEvent] | None:
    """Events from ``position`` on for parked followers (``_fanout.Source``)."""
    first, last = found.last - len(found.ring) + 1, found.last
    if found.deleted or found.state is not StreamState.OPEN or position < first:
        return None
    return [found.at(seq) for seq in range(position, last + 1)]
