"""Layer 3: the event log contract.

Every stream in mianzhang (an LLM generation, a channel, a job's progress, a file tail) is an
append-only log of events. Producers append; each reader follows the log after an id at its
own pace. There is no per-subscriber queue: a slow reader lags, and a reader that falls out of
retention is told so with a :class:`Reset` before it continues. Never silent loss.

Ids
---
An event id is ``"{epoch}-{seq}"``: ``seq`` counts 1, 2, 3, ... within one *epoch* of a stream,
with no gaps; the epoch is a random token chosen when the stream's history begins (stream
created, memory backend restarted, Redis key lost). An id from another epoch therefore names
history that no longer exists, and is recognised as such.

Guarantees every backend gives (checked by ONE contract suite, ``tests/log/contract``)
-------------------------------------------------------------------------------------
* ``append`` returns the new event's id; ids of one stream strictly increase.
* ``follow(after=X)`` yields every retained event with id > X in order, then live events as
  they are appended, with no gap and no duplicate at the seam between replay and live; it
  returns after yielding the last event once the stream is closed (or cancelled).
* If events after X are no longer retained (trimmed by ``max_events`` or expired), or X is from
  another epoch, or X cannot be parsed, ``follow``/``read`` first yield a :class:`Reset` saying
  why and where reading resumes, then continue from the oldest retained event.
* Memory is bounded by retention (``max_events`` per stream, ``ttl_after_close``), whatever the
  number or speed of readers.
* A reader that is iterating ``follow`` counts in ``readers(stream)`` (on every instance sharing
  the backend) until its iterator is closed.

Producer leases (no reader waits forever on a dead producer)
------------------------------------------------------------
The producer of a stream (an LLM generation, a job attempt, an upload request: see
``_holder.py`` for producers bound to a request) holds a *lease* on it in the backend, taken
with :meth:`EventLog.lease` together with the entries that end the stream if the producer is
lost (for a generation, a ``gen.error`` of type ``producer_lost``), and renewed by
its owner with :meth:`EventLog.renew_leases` (all of one owner's streams in one round trip).
A lease that is not renewed for ``ttl`` seconds *expires*: its owner is presumed dead (its
process was killed, its host partitioned, its event loop blocked that long, or, in one
process, its task ended without ending its stream). Then:

* whoever notices first (a follower waiting on the stream, :meth:`EventLog.sweep_leases`, or
  :meth:`EventLog.expire_lease`) appends the stored entries and, for a *final* lease, ends the
  stream in state ``FAILED``, in one atomic step: exactly once across every instance, and
  never after the stream ended otherwise (closing a stream drops its lease);
* a follower waiting on the stream receives those entries and ends within ``ttl`` plus the
  backend's check delay after the producer's last renewal (memory: a timer at the expiry;
  Redis: followers idle for ``lease_idle`` seconds have the lease checked, then again when it
  would expire, every ``lease_check`` seconds at most: ``ttl + lease_check`` plus one round
  trip; with the defaults, under ``ttl + 1`` s);
* appends to a ``FAILED`` stream raise ``StreamClosedError``: a producer that was only
  partitioned, or an instance restarted, cannot resurrect it; its next renewal reports the
  lease lost, and its owner stops it.

A *non-final* lease (``final=False``: a producer that will be resumed elsewhere, like a job the
queue re-delivers) keeps the stream open: its entries are appended (a ``requeued`` state) and
the lease is dropped; a new owner taking a non-final lease held by another first applies the
old owner's entries the same way.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "PRODUCER_LOST",
    "EventLog",
    "LogEntry",
    "LogEvent",
    "Reset",
    "ResetReason",
    "StreamInfo",
    "StreamState",
    "format_id",
    "parse_id",
]


PRODUCER_LOST = "producer_lost"
"""The reason (and error type) of a stream whose producer's lease expired."""


class StreamState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # finished normally: followers end after the last event
    CANCELLED = "cancelled"  # stopped by a user or by abandonment: followers end too
    FAILED = "failed"  # its producer was lost (lease expired): ended with the stored entries


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One event to append: ``data`` (text, usually JSON) and ``event`` its name."""

    data: str
    event: str | None = None


ResetReason = Literal["retention", "epoch", "invalid_id", "unknown_stream"]


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One event of a stream. ``data`` is text (JSON or plain) exactly as appended."""

    id: str
    seq: int
    data: str
    event: str | None = None


@dataclass(frozen=True, slots=True)
class Reset:
    """Events the reader asked for are gone; reading resumes at ``resume_after``.

    ``requested`` is the id the reader asked to start after; ``resume_after`` is the id reading
    continues after (``None``: from the first retained event); ``first_available`` the oldest
    retained id or ``None`` if nothing is retained; ``epoch`` the stream's current epoch.
    """

    reason: ResetReason
    requested: str | None
    first_available: str | None
    epoch: str


@dataclass(frozen=True, slots=True)
class StreamInfo:
    name: str
    epoch: str
    state: StreamState
    created: float  # unix time
    last_id: str | None  # id of the newest event, None if empty
    length: int  # events currently retained
    max_events: int | None
    ttl_after_close: float | None
    meta: dict[str, str] = field(default_factory=dict)


def format_id(epoch: str, seq: int) -> str:
    return f"{epoch}-{seq}"


def parse_id(value: str) -> tuple[str, int] | None:
    """``"epoch-seq"`` -> ``(epoch, seq)``; ``None`` if ``value`` is not of that form."""
    epoch, sep, seq = value.rpartition("-")
    if not sep or not epoch or not seq.isascii() or not seq.isdigit():
        return None
    return epoch, int(seq)


@runtime_checkable
class EventLog(Protocol):
    """Append-only, resumable, multi-reader streams. Implementations: ``MemoryEventLog``,
    ``RedisEventLog``. All methods are coroutine-safe within one event loop."""

    async def create(
        self,
        stream: str,
        *,
        max_events: int | None = None,
        ttl_after_close: float | None = None,
        meta: dict[str, str] | None = None,
    ) -> StreamInfo:
        """Create ``stream`` (state OPEN) if it does not exist; return its info either way.

        Retention given here applies to the new stream; an existing stream keeps its own.
        """
        ...

    async def append(
        self,
        stream: str,
        data: str,
        *,
        event: str | None = None,
        idempotency_key: str | None = None,
        idempotency_ttl: float | None = None,
    ) -> str:
        """Append one event and return its id. Creates the stream with default retention if
        missing. Raises ``StreamClosedError`` if the stream is closed or cancelled.

        With ``idempotency_key``: if an append with the same key to the same history (epoch)
        of ``stream`` happened within ``idempotency_ttl`` seconds (``None``: the log's
        default), nothing is appended and that append's id is returned (even if the stream
        was closed since). Makes retrying an append that failed ambiguously safe.
        """
        ...

    async def read(
        self, stream: str, after: str | None = None, *, limit: int = 1000
    ) -> tuple[Reset | None, list[LogEvent]]:
        """Up to ``limit`` retained events after ``after`` (``None``: from the start), without
        waiting. A ``Reset`` is returned first when ``after`` names lost history."""
        ...

    def follow(
        self, stream: str, after: str | None = None
    ) -> AsyncGenerator[LogEvent | Reset, None]:
        """Replay after ``after``, then follow live until the stream is closed or cancelled.

        Raises ``StreamNotFound`` on first iteration if the stream does not exist. Closing the
        iterator (``aclose``, or cancelling the task iterating it) releases everything it held
        and removes it from ``readers``.
        """
        ...

    async def close(self, stream: str, *, state: StreamState = StreamState.CLOSED) -> None:
        """Mark the stream finished (CLOSED, CANCELLED or FAILED) and drop its lease.
        Followers finish after the last event; the stream is deleted ``ttl_after_close``
        seconds later. Idempotent (the first final state is kept)."""
        ...

    async def lease(
        self,
        stream: str,
        owner: str,
        *,
        ttl: float,
        entries: Sequence[LogEntry] = (),
        final: bool = True,
    ) -> bool:
        """Take the producer lease of OPEN ``stream`` for ``owner`` for ``ttl`` seconds,
        storing ``entries`` to append if it expires (see the module docstring). True if
        taken (or renewed: ``owner`` held it already; its entries are replaced). False if the
        stream is not open, or another owner holds a live final lease (a non-final one, or an
        expired one, is first applied as if it had expired; if that ends the stream: False).
        Raises ``StreamNotFound``."""
        ...

    async def renew_leases(self, owner: str, streams: Sequence[str], *, ttl: float) -> set[str]:
        """Extend ``owner``'s leases on ``streams`` to ``ttl`` seconds from now, in one round
        trip (per cluster node); return the streams whose lease ``owner`` no longer holds (the
        stream ended, vanished, or another owner took it over): their producers must stop. A
        lease that expired but was not applied yet is still ``owner``'s."""
        ...

    async def release_lease(self, stream: str, owner: str, *, apply: bool = False) -> bool:
        """Drop ``owner``'s lease on ``stream`` (nothing if another owner holds it). With
        ``apply``, its entries are applied first, exactly as on expiry. True if a lease of
        ``owner`` was dropped."""
        ...

    async def expire_lease(self, stream: str) -> float | None:
        """The atomic check-and-end: if ``stream``'s lease has expired, apply it (its entries;
        FAILED for a final lease) and return ``None``. Otherwise the seconds until it
        expires, or ``None`` when there is no lease (or the stream is not open)."""
        ...

    async def sweep_leases(self) -> int:
        """Apply every expired lease this backend can find (also of streams nobody follows);
        return how many this call applied."""
        ...

    async def info(self, stream: str) -> StreamInfo | None:
        """The stream's metadata, or ``None`` if it does not exist."""
        ...

    async def readers(self, stream: str) -> int:
        """How many ``follow`` iterators are open on ``stream``, across all instances."""
        ...

    async def aclose(self) -> None:
        """Release connections and background tasks. Followers end with ``LogError``."""
        ...
