"""The end of a producer's stream: closing the producer, the hooks, closing the stream.

Used by :class:`~mianzhang.log.ProducerRunner` (see ``_producers.py`` for the order and the
guarantees); everything here runs shielded from a second cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .._errors import LogError, MianzhangError
from ._protocol import PRODUCER_LOST, EventLog, LogEntry, StreamState

__all__ = [
    "Closing",
    "Hooks",
    "LogEntry",
    "OnEnd",
    "complete_shielded",
    "error_body",
    "finish",
    "lost_entries",
]

logger = logging.getLogger("mianzhang.producers")


Closing = Callable[[str], Sequence[LogEntry]]
"""``closing(reason)``: the entries ending a cancelled producer's stream."""

OnEnd = Callable[[], Awaitable[None]]
"""``on_end()``: awaited once the stream has ended, whatever happened."""


@dataclass(frozen=True, slots=True)
class Hooks:
    closing: Closing | None = None
    on_end: OnEnd | None = None


async def complete_shielded(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` to its end even if the caller is cancelled meanwhile (then the
    cancellation is re-raised once ``work`` is done): no task is left running unowned."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


async def finish(
    log: EventLog,
    stream: str,
    producer: AsyncIterator[LogEntry],
    cancelled: asyncio.CancelledError | None,
    state: StreamState,
    hooks: Hooks,
) -> None:
    """The end of a stream, in the order of ``_producers.py``'s docstring."""
    with contextlib.suppress(Exception):
        await _close_producer(producer, cancelled)
    if cancelled is not None and hooks.closing is not None:
        await _append_closing(log, stream, hooks.closing, _reason(cancelled))
    with contextlib.suppress(LogError):
        await log.close(stream, state=state)
    if hooks.on_end is not None:
        try:
            await hooks.on_end()
        except Exception:
            logger.exception("the on_end hook of %r failed", stream)


def _reason(cancelled: asyncio.CancelledError) -> str:
    args = cancelled.args
    return args[0] if args and isinstance(args[0], str) else "cancelled"


async def _append_closing(log: EventLog, stream: str, closing: Closing, reason: str) -> None:
    """Append ``closing(reason)``; a stream already closed (or gone) keeps what it has."""
    try:
        entries = closing(reason)
    except Exception:
        logger.exception("the closing hook of %r failed", stream)
        return
    with contextlib.suppress(LogError):
        for entry in entries:
            await log.append(stream, entry.data, event=entry.event)


async def _close_producer(
    producer: AsyncIterator[LogEntry], cancelled: asyncio.CancelledError | None
) -> None:
    """Close ``producer``. A cancellation that hit the runner between two items is first thrown
    into it, so the producer sees it (and its reason) as if it had been awaiting."""
    athrow = getattr(producer, "athrow", None)
    if cancelled is not None and athrow is not None:
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, RuntimeError):
            await athrow(asyncio.CancelledError(*cancelled.args))
    aclose = getattr(producer, "aclose", None)
    if aclose is not None:
        await aclose()


def error_body(exc: BaseException) -> str:
    if isinstance(exc, MianzhangError):
        payload = {"type": type(exc).__name__, "message": str(exc)}
    else:
        payload = {"type": "internal_error", "message": "the producer failed on the server"}
    return orjson.dumps(payload).decode()


LOST_MESSAGE = "the instance running this stream's producer stopped (its lease expired)"


def lost_entries(stream: str, closing: Closing | None) -> list[LogEntry]:
    """The entries ending ``stream`` if its producer is lost: ``closing("producer_lost")``,
    else (or if that hook fails) an ``error`` event ``{"type": "producer_lost", "message"}``."""
    if closing is not None:
        try:
            return list(closing(PRODUCER_LOST))
        except Exception:
            logger.exception("the closing hook of %r failed", stream)
    body = orjson.dumps({"type": PRODUCER_LOST, "message": LOST_MESSAGE}).decode()
    return [LogEntry(body, "error")]
