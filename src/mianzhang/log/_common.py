"""Pieces both backends share: defaults, epochs, resolving ``after``, and the wake-up primitive.

Nothing here does I/O. Resolving ``after`` lives in one place so the memory and Redis backends
cannot disagree on when a reader gets a :class:`Reset` and where it resumes.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from dataclasses import dataclass

from ._protocol import Reset, ResetReason, StreamState, format_id, parse_id

DEFAULT_MAX_EVENTS = 10_000
DEFAULT_TTL_AFTER_CLOSE = 600.0
DEFAULT_IDEMPOTENCY_TTL = 3600.0


@dataclass(frozen=True, slots=True)
class LogStatistics:
    """What one log instance holds in this process right now.

    ``streams``: streams held (memory) or watched by the shared read (Redis); ``events``:
    events held in this process's memory (memory: all retained events; Redis: the watcher's
    cache); ``followers``: open ``follow`` iterators on this instance.
    """

    streams: int
    events: int
    followers: int


def new_epoch() -> str:
    """A fresh random epoch token (12 hex characters, no ``-``)."""
    return secrets.token_hex(6)


def check_retention(max_events: int | None, ttl_after_close: float | None) -> None:
    """Reject retention settings no backend can honour (``ValueError``)."""
    if max_events is not None and (isinstance(max_events, bool) or max_events < 1):
        raise ValueError(f"max_events must be a positive integer or None, not {max_events!r}")
    if ttl_after_close is not None and (not math.isfinite(ttl_after_close) or ttl_after_close < 0):
        raise ValueError(f"ttl_after_close must be >= 0 or None, not {ttl_after_close!r}")


def check_stream_name(stream: str) -> None:
    if not isinstance(stream, str) or not stream:
        raise ValueError(f"stream name must be a non-empty string, not {stream!r}")


def check_limit(limit: int) -> None:
    """``read``'s ``limit``: at least 0 (``ValueError``)."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit!r}")


def final_state(state: StreamState) -> StreamState:
    """``close``'s ``state``: a final one (``ValueError`` for OPEN)."""
    if state is StreamState.OPEN:
        raise ValueError("close() needs a final state (CLOSED, CANCELLED or FAILED)")
    return StreamState(state)


def key_ttl(given: float | None, default: float) -> float:
    """The seconds an idempotency key is kept: ``given``, or the log's ``default`` when
    ``None``; more than 0 (``ValueError``)."""
    ttl = default if given is None else given
    if not ttl > 0:
        raise ValueError(f"idempotency_ttl must be > 0, not {given!r}")
    return ttl


def resolve_after(
    after: str | None, *, epoch: str, first: int | None, last: int
) -> tuple[Reset | None, int]:
    """Where a reader asking for events after ``after`` starts: ``(reset, next_seq)``.

    ``first`` is the seq of the oldest retained event (``None`` if nothing is retained) and
    ``last`` the newest seq ever assigned in this epoch (0 if none). ``next_seq`` is the first
    seq the reader must receive. A :class:`Reset` is returned whenever events the reader asked
    for cannot be delivered: ``after`` unparseable or ahead of the log (``invalid_id``), from
    another epoch (``epoch``), or older than what is retained (``retention``, also for
    ``after=None`` once the head of the stream was trimmed). After a reset, reading resumes at
    the oldest retained event.
    """
    lowest = first if first is not None else last + 1

    def reset(reason: ResetReason) -> tuple[Reset | None, int]:
        available = format_id(epoch, first) if first is not None else None
        return Reset(reason, after, available, epoch), lowest

    if after is None:
        return reset("retention") if lowest > 1 else (None, 1)
    parsed = parse_id(after)
    if parsed is None:
        return reset("invalid_id")
    their_epoch, seq = parsed
    if their_epoch != epoch:
        return reset("epoch")
    if seq > last:
        return reset("invalid_id")
    if seq + 1 < lowest:
        return reset("retention")
    return None, seq + 1


def lapped(epoch: str, delivered: int, first: int | None) -> Reset:
    """The reset for a follower that delivered up to seq ``delivered`` and then was overtaken
    by trimming (the events after ``delivered`` are gone)."""
    available = format_id(epoch, first) if first is not None else None
    return Reset("retention", format_id(epoch, delivered), available, epoch)


class Notifier:
    """Wakes every waiter at once; a waiter re-checks its condition after waking.

    Each ``wait()`` hands out a fresh future of the current generation; ``notify()`` resolves
    the whole generation in one pass and starts the next. Cancelling one waiter cancels only
    its own future (one shared future awaited by all would be cancelled for everyone by the
    first cancelled waiter, and :func:`asyncio.shield` around it costs 2-3x more per wake-up:
    10,000 waiters woke in 18 ms this way, 41-57 ms with ``shield``). Waiters cancelled while
    nothing is notified are compacted away, so the list stays within about twice the live
    waiters. Notifications are not remembered: check the condition before waiting.
    """

    __slots__ = ("_limit", "_waiters")

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []
        self._limit = 64

    def wait(self) -> asyncio.Future[None]:
        waiters = self._waiters
        if len(waiters) >= self._limit:
            waiters[:] = [waiter for waiter in waiters if not waiter.done()]
            self._limit = max(64, 2 * len(waiters))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(future)
        return future

    def notify(self) -> None:
        waiters = self._waiters
        if waiters:
            self._waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
