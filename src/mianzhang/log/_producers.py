"""Producers: the tasks that append to a stream, owned by a :class:`ProducerRunner`.

A producer is an async iterator of :class:`LogEntry`; the runner appends each entry to its
stream and closes the stream when the iterator ends. A producer outlives the HTTP request that
started it (the request is only one reader), under one of two policies:

* ``background``: runs to the end whoever is reading;
* cancel when abandoned (the default): cancelled once the stream has had no reader, on any
  instance sharing the log, for ``grace_period`` seconds (an LLM generation nobody reads costs
  money). A reader that reconnects within the grace period keeps it alive.

``cancel(stream)`` stops a producer on whichever instance runs it: it marks the stream
CANCELLED in the log, and the owning runner notices within ``poll_interval`` seconds and cancels
the task (the producer's ``finally`` blocks run; its last appends are refused by the log).

Guarantees: every producer task is owned here, cancelled and awaited by :meth:`aclose`; a
producer that fails gets an ``error`` event (``{"type", "message"}``, no traceback) and its stream
is closed, so no reader waits forever for a stream whose producer died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson

from .._errors import LogError, MianzhangError, StreamClosedError
from ._protocol import EventLog, StreamState

__all__ = ["LogEntry", "ProducerRunner"]

logger = logging.getLogger("mianzhang.producers")


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One event to append: ``data`` as it goes on the wire, ``event`` its SSE event name."""

    data: str
    event: str | None = None


@dataclass(slots=True)
class _Running:
    task: asyncio.Task[None]
    background: bool
    grace_period: float
    unread_since: float = field(default_factory=time.monotonic)


class ProducerRunner:
    """Runs producers for one app instance; see the module docstring for the policies."""

    def __init__(
        self, log: EventLog, *, grace_period: float = 10.0, poll_interval: float = 0.5
    ) -> None:
        self.log = log
        self.grace_period = grace_period
        self.poll_interval = poll_interval
        self._running: dict[str, _Running] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False

    def running(self) -> list[str]:
        """The streams whose producers run on this instance."""
        return list(self._running)

    async def start(
        self,
        stream: str,
        producer: AsyncIterator[LogEntry],
        *,
        background: bool = False,
        grace_period: float | None = None,
    ) -> None:
        """Run ``producer`` as the owner of ``stream`` (created if missing) from now on."""
        if self._closed:
            raise LogError("the producer runner is closed")
        if stream in self._running:
            raise LogError(f"stream {stream!r} already has a producer")
        task = asyncio.create_task(self._run(stream, producer), name=f"producer:{stream}")
        grace = self.grace_period if grace_period is None else grace_period
        self._running[stream] = _Running(task, background, grace)
        task.add_done_callback(lambda _: self._running.pop(stream, None))
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="producers:watch")

    async def cancel(self, stream: str) -> bool:
        """Stop ``stream``'s producer wherever it runs; False if the stream is not open."""
        info = await self.log.info(stream)
        if info is None or info.state is not StreamState.OPEN:
            return False
        await self.log.close(stream, state=StreamState.CANCELLED)
        running = self._running.get(stream)
        if running is not None:
            running.task.cancel()
        return True

    async def aclose(self) -> None:
        """Cancel every producer (their streams end CANCELLED) and the watcher; await them."""
        self._closed = True
        tasks = [r.task for r in self._running.values()]
        if self._watcher is not None:
            tasks.append(self._watcher)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, stream: str, producer: AsyncIterator[LogEntry]) -> None:
        log = self.log
        state = StreamState.CLOSED
        try:
            async for entry in producer:
                await log.append(stream, entry.data, event=entry.event)
        except StreamClosedError:
            return  # cancelled elsewhere: the stream already says so
        except asyncio.CancelledError:
            state = StreamState.CANCELLED
            raise
        except Exception as exc:
            logger.exception("producer of %r failed", stream)
            body = _error_body(exc)
            with contextlib.suppress(LogError):
                await log.append(stream, body, event="error")
        finally:
            aclose = getattr(producer, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(aclose())
            with contextlib.suppress(LogError):
                await asyncio.shield(log.close(stream, state=state))

    async def _watch(self) -> None:
        """One task for all producers: abandonment and cancellation from other instances."""
        while self._running:
            await asyncio.sleep(self.poll_interval)
            now = time.monotonic()
            for stream, running in list(self._running.items()):
                try:
                    info = await self.log.info(stream)
                    if info is not None and info.state is not StreamState.OPEN:
                        running.task.cancel()
                        continue
                    if running.background:
                        continue
                    if await self.log.readers(stream) > 0:
                        running.unread_since = now
                    elif now - running.unread_since >= running.grace_period:
                        logger.info("stream %r abandoned: cancelling its producer", stream)
                        running.task.cancel()
                except LogError:
                    logger.warning("cannot check producer of %r", stream, exc_info=True)


def _error_body(exc: BaseException) -> str:
    if isinstance(exc, MianzhangError):
        payload = {"type": type(exc).__name__, "message": str(exc)}
    else:
        payload = {"type": "internal_error", "message": "the producer failed on the server"}
    return orjson.dumps(payload).decode()
