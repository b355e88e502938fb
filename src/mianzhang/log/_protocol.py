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
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "EventLog",
    "LogEvent",
    "Reset",
    "ResetReason",
    "StreamInfo",
    "StreamState",
    "format_id",
    "parse_id",
]


class StreamState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # finished normally: followers end after the last event
    CANCELLED = "cancelled"  # stopped by a user or by abandonment: followers end too


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
        """Mark the stream finished (CLOSED or CANCELLED). Followers finish after the last
        event; the stream is deleted ``ttl_after_close`` seconds later. Idempotent."""
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
