"""Producers: the tasks that append to a stream, owned by a :class:`ProducerRunner`.

A producer is an async iterator of :class:`LogEntry`; the runner appends each entry to its
stream and closes the stream when the iterator ends. A producer outlives the HTTP request that
started it (the request is only one reader), under one of two policies:

* ``background``: runs to the end whoever is reading;
* cancel when abandoned (the default): cancelled once the stream has had no reader, on any
  instance sharing the log, for ``grace_period`` seconds (an LLM generation nobody reads costs
  money): between ``grace_period`` and ``grace_period + poll_interval`` seconds after the last
  reader left (or after the first check, if nobody ever read). A reader that reconnects within
  the grace period keeps it alive.

While the log's backend is unreachable (Redis restarting), appends are retried with capped
backoff for up to ``append_retry_timeout`` seconds. Every append carries an idempotency key
(producer token + entry number), so an append whose reply was lost is never written twice; the
key is remembered for twice that window (not the log's one-hour default: a long generation
would otherwise leave one key per event in Redis for an hour).

``cancel(stream)`` stops a producer on whichever instance runs it. On the owning instance the
task is cancelled at once. Elsewhere a cancel request (a small marker stream next to the
stream, :func:`cancel_marker`) is left in the log; the owning runner notices it within
``poll_interval`` seconds and cancels the task. Either way the stream is ended by its owner,
and ``cancel`` returns once the stream has ended CANCELLED. If no runner answers within
``cancel_timeout`` seconds (its instance died), the stream is marked CANCELLED directly.

Every cancellation reaches the producer as ``asyncio.CancelledError(reason)``, ``reason``
being ``"stopped"`` (``cancel``), ``"abandoned"`` (grace period without readers),
``"shutdown"`` (:meth:`ProducerRunner.aclose`) or ``"producer_lost"`` (its lease was lost).

Liveness (``_protocol.py``, "Producer leases"): :meth:`ProducerRunner.start` takes the
stream's lease in the log, for ``lease_ttl`` seconds, with the entries that end the stream if
this instance dies: ``closing("producer_lost")`` (an LLM stream's ``gen.error`` of type
``producer_lost``), or, without a ``closing`` hook, an ``error`` event
``{"type": "producer_lost", "message"}``. The runner renews the leases of all its running
producers in one round trip every ``lease_ttl / 3`` seconds, for as long as each producer's
task runs. If this process is killed (or partitioned from the log, or its loop blocked, for
longer than ``lease_ttl``), another instance applies those entries and marks the stream
FAILED, exactly once; its readers end there instead of waiting forever. A renewal that finds a
lease lost (the stream ended, or failed meanwhile) cancels that producer with reason
``"producer_lost"``: a partitioned producer cannot write into a stream already ended.

Hooks of :meth:`ProducerRunner.start` (the end of a stream, in this order, all shielded from a
second cancellation such as a shutdown during a stop):

1. the producer is closed (a cancellation that hit the runner between two entries is first
   thrown into it, with its reason, so its ``except``/``finally`` blocks see it);
2. ``closing(reason)``, if the producer was cancelled: its entries are appended exactly once,
   while the stream is still open (an LLM stream's ``gen.cancelled`` event). ``closing`` is
   also called once at start, with ``"producer_lost"``, for the entries kept with the lease
   (below): it must not have side effects;
3. the stream is closed (CLOSED, or CANCELLED after a cancellation);
4. ``on_end()`` is awaited exactly once, whatever happened: finished, failed, cancelled, the
   stream closed elsewhere (an LLM generation's token budget is charged there).

Guarantees: every producer task is owned here, cancelled and awaited by :meth:`aclose`; a
producer that fails gets an ``error`` event (``{"type", "message"}``, no traceback) and its stream
is closed, so no reader waits forever for a stream whose producer died. A failing hook is
logged and does not keep the stream open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from .._errors import (
    BackendUnavailable,
    LogError,
    StreamClosedError,
    StreamNotFound,
)
from ._producer_end import (
    Closing,
    Hooks,
    LogEntry,
    OnEnd,
    complete_shielded,
    error_body,
    finish,
    lost_entries,
)
from ._protocol import PRODUCER_LOST, EventLog, StreamState

__all__ = ["LogEntry", "ProducerRunner", "cancel_marker", "complete_shielded"]

logger = logging.getLogger("mianzhang.producers")

# After each of the first entries but the very first the runner yields to the event loop once:
# time to the first events for readers, at a cost of a few loop turns per stream (not per
# entry). The first entry is often a header (an LLM stream's gen.start) after which the
# producer has real work to start at once (the upstream request): no turn is given up there.
_EAGER_ENTRIES = range(2, 5)

_MARKER_TTL = 60.0


def cancel_marker(stream: str) -> str:
    """The name of the marker stream asking ``stream``'s owning runner to cancel it."""
    return f"{stream}~cancel"


@dataclass(slots=True)
class _Running:
    task: asyncio.Task[None]
    background: bool
    grace_period: float
    # since when no reader was seen: None while a reader is (or until the first check)
    unread_since: float | None = None
    cancelling: bool = False
    started: bool = False  # the task's body began (so its finally will run)
    deferred: str | None = None  # a cancel reason for a task that had not started yet

    def cancel(self, reason: str) -> None:
        """Cancel the task with ``reason``. A task cancelled before its first step would never
        run its body (nor the ``finally`` that ends the stream): it is told at its start."""
        self.cancelling = True
        if self.started:
            self.task.cancel(reason)
        elif self.deferred is None:
            self.deferred = reason


class ProducerRunner:
    """Runs producers for one app instance; see the module docstring for the policies."""

    def __init__(
        self,
        log: EventLog,
        *,
        grace_period: float = 10.0,
        poll_interval: float = 0.5,
        append_retry_timeout: float = 30.0,
        cancel_timeout: float | None = None,
        lease_ttl: float = 5.0,
    ) -> None:
        if not lease_ttl > 0:
            raise ValueError(f"lease_ttl must be > 0, not {lease_ttl!r}")
        self.log = log
        self.lease_ttl = lease_ttl
        self.owner = f"producers:{secrets.token_hex(8)}"  # this runner, as the leases' owner
        self.cancel_timeout = 4 * poll_interval + 5.0 if cancel_timeout is None else cancel_timeout
        self.append_retry_timeout = append_retry_timeout
        self.grace_period = grace_period
        self.poll_interval = poll_interval
        self._running: dict[str, _Running] = {}
        self._idle: asyncio.Event | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False

    def _finished(self, stream: str) -> None:
        self._running.pop(stream, None)
        if not self._running and self._idle is not None:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no producer runs here (bound it with ``asyncio.timeout``)."""
        if not self._running:
            return
        if self._idle is None:
            self._idle = asyncio.Event()
        self._idle.clear()
        await self._idle.wait()

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
        closing: Closing | None = None,
        on_end: OnEnd | None = None,
    ) -> None:
        """Run ``producer`` as the owner of ``stream`` (created if missing) from now on.

        ``closing`` and ``on_end`` are the hooks of the stream's end (module docstring); they
        run only if this returns normally (a closed runner, or a second producer for the same
        stream, here or on another instance, raises ``LogError`` first). The stream's lease
        is taken before the producer starts (module docstring)."""
        if self._closed:
            raise LogError("the producer runner is closed")
        if stream in self._running:
            raise LogError(f"stream {stream!r} already has a producer")
        await self.log.create(stream)  # exists (OPEN) when start returns; keeps its retention
        await self._take_lease(stream, closing)
        hooks = Hooks(closing, on_end)
        task = asyncio.create_task(self._run(stream, producer, hooks), name=f"producer:{stream}")
        grace = self.grace_period if grace_period is None else grace_period
        self._running[stream] = _Running(task, background, grace)
        task.add_done_callback(lambda _: self._finished(stream))
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="producers:watch")

    async def _take_lease(self, stream: str, closing: Closing | None) -> None:
        entries = lost_entries(stream, closing)
        if await self.log.lease(stream, self.owner, ttl=self.lease_ttl, entries=entries):
            return
        info = await self.log.info(stream)
        if info is not None and info.state is StreamState.OPEN:
            raise LogError(f"stream {stream!r} has a producer on another instance")
        # an ended stream: the producer's first append finds it closed and stops

    async def cancel(self, stream: str) -> bool:
        """Stop ``stream``'s producer wherever it runs and return once the stream has ended;
        False if the stream is not open (see the module docstring)."""
        info = await self.log.info(stream)
        if info is None or info.state is not StreamState.OPEN:
            return False
        running = self._running.get(stream)
        if running is not None:
            running.cancel("stopped")
            # the task ends the stream in its (shielded) finally: wait for that, bounded
            await asyncio.wait({running.task}, timeout=self.cancel_timeout)
            return True
        marker = cancel_marker(stream)
        await self.log.create(marker, max_events=1, ttl_after_close=_MARKER_TTL)
        await self.log.close(marker)
        try:
            async with asyncio.timeout(self.cancel_timeout):
                await self._ended(stream, info.last_id)
        except TimeoutError:
            logger.warning("no producer answered the cancel of %r: marking it cancelled", stream)
            await self.log.close(stream, state=StreamState.CANCELLED)
        return True

    async def _ended(self, stream: str, after: str | None) -> None:
        """Return once ``stream`` is no longer open (a follower ends with its stream)."""
        with contextlib.suppress(StreamNotFound):
            async with aclosing(self.log.follow(stream, after)) as items:
                async for _ in items:
                    pass

    async def aclose(self) -> None:
        """Cancel every producer (their streams end CANCELLED) and the watcher; await them."""
        self._closed = True
        tasks = []
        for running in self._running.values():
            running.cancel("shutdown")
            tasks.append(running.task)
        if self._watcher is not None:
            self._watcher.cancel()
            tasks.append(self._watcher)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, stream: str, producer: AsyncIterator[LogEntry], hooks: Hooks) -> None:
        log = self.log
        state = StreamState.CLOSED
        token = secrets.token_hex(8)
        cancelled: asyncio.CancelledError | None = None
        try:
            running = self._running[stream]  # registered before this task's first step
            running.started = True
            if running.deferred is not None:
                raise asyncio.CancelledError(running.deferred)
            n = 0
            async for entry in producer:
                n += 1
                await self._append(stream, entry, f"{token}:{n}")
                if n in _EAGER_ENTRIES:
                    # Let the readers run now: a producer whose input arrived in one burst would
                    # otherwise append the whole burst before anyone sees the first event.
                    await asyncio.sleep(0)
        except StreamClosedError:
            return  # cancelled elsewhere: the stream already says so
        except asyncio.CancelledError as exc:
            state = StreamState.CANCELLED
            cancelled = exc
            raise
        except Exception as exc:
            logger.exception("producer of %r failed", stream)
            body = error_body(exc)
            with contextlib.suppress(LogError):
                await log.append(stream, body, event="error")
        finally:
            # a second cancellation (shutdown during a stop) must not skip closing the stream
            end = finish(log, stream, producer, cancelled, state, hooks)
            await complete_shielded(end)

    async def _append(self, stream: str, entry: LogEntry, key: str) -> None:
        delay = 0.05
        deadline: float | None = None
        while True:
            try:
                await self.log.append(
                    stream,
                    entry.data,
                    event=entry.event,
                    idempotency_key=key,
                    idempotency_ttl=2 * self.append_retry_timeout,
                )
                return
            except BackendUnavailable:
                now = time.monotonic()
                deadline = deadline or now + self.append_retry_timeout
                if now >= deadline:
                    raise
                logger.warning("log unavailable; retrying append to %r in %.2fs", stream, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _watch(self) -> None:
        """One task for all producers: every ``poll_interval`` it checks for stops (from any
        instance) and readers; every ``lease_ttl / 3`` it renews their leases; it also wakes
        exactly when an abandonment deadline is due."""
        next_full = time.monotonic() + self.poll_interval
        next_renew = time.monotonic() + self.lease_ttl / 3
        while self._running:
            delay = min(next_full, next_renew, self._next_abandonment()) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            if now >= next_renew:
                next_renew = now + self.lease_ttl / 3
                await self._renew()
            full = now >= next_full
            if full:
                next_full = now + self.poll_interval
            for stream, running in list(self._running.items()):
                await self._visit(stream, running, now, full)

    def _next_abandonment(self) -> float:
        """When the first abandonment deadline is due (``inf``: none)."""
        due = [
            running.unread_since + running.grace_period
            for running in self._running.values()
            if running.unread_since is not None and not running.cancelling
        ]
        return min(due, default=float("inf"))

    async def _visit(self, stream: str, running: _Running, now: float, full: bool) -> None:
        if running.cancelling:
            return
        due = (
            running.unread_since is not None and now - running.unread_since >= running.grace_period
        )
        if full or due:
            try:
                await self._check(stream, running, now, full)
            except LogError:
                logger.warning("cannot check producer of %r", stream, exc_info=True)

    async def _renew(self) -> None:
        """Renew every running producer's lease in one round trip; stop those whose lease is
        lost (module docstring). A failed renewal is retried at the next round: the leases
        stay valid for ``lease_ttl`` since the last renewal that succeeded."""
        try:
            lost = await self.log.renew_leases(self.owner, list(self._running), ttl=self.lease_ttl)
        except LogError:
            logger.warning("cannot renew the producers' leases", exc_info=True)
            return
        for stream in lost:
            running = self._running.get(stream)
            if running is not None and not running.cancelling:
                logger.warning("the lease of %r was lost: stopping its producer", stream)
                running.cancel(PRODUCER_LOST)

    async def _check(self, stream: str, running: _Running, now: float, full: bool) -> None:
        if full:
            info = await self.log.info(stream)
            if info is not None and info.state is not StreamState.OPEN:
                failed = info.state is StreamState.FAILED  # presumed dead: its lease expired
                running.cancel(PRODUCER_LOST if failed else "stopped")
                return
            if await self.log.info(cancel_marker(stream)) is not None:
                logger.info("stream %r stopped from another instance", stream)
                running.cancel("stopped")
                return
        if running.background:
            return
        if await self.log.readers(stream) > 0:
            running.unread_since = None
        elif running.unread_since is None:
            running.unread_since = now  # the last reader left since the last check
        elif now - running.unread_since >= running.grace_period:
            logger.info("stream %r abandoned: cancelling its producer", stream)
            running.cancel("abandoned")
