"""Run one attempt of one job, owning the job's task from start to its final event.

Guarantees: exactly one terminal transition per job (the store refuses a second one); the
job's stream ends with ``complete``, ``error`` or a ``cancelled`` state event and is then
closed; a cancel request (from any process, through the store) cancels the job function
within ``cancel_poll`` seconds and its ``finally`` runs; if the runner itself is cancelled
(worker shutdown) the job function is cancelled and awaited before the runner returns, and the
job is either left ``running`` for another worker to claim (``requeue=True``, Redis) or failed
as ``interrupted`` (the in-process pool, where nothing could claim it).

Liveness (``log/_protocol.py``, "Producer leases"): each attempt holds the lease of the job's
stream, renewed with the cancel checks (every ``lease_ttl / 3`` seconds). If the worker dies
mid-attempt, its readers are told within the lease's bound, on any instance:

* a job of the Redis queue (``requeue=True``) is *resumed*: the queue re-delivers it to another
  worker once ``visibility_timeout`` has passed, and its progress stream *continues* (same
  stream, ids keep increasing). The lost attempt's lease is non-final: when it expires, a
  ``state`` event ``{"state": "requeued", "attempt": N, "reason": "producer_lost"}`` is
  appended and the stream stays ``open``; the next attempt then appends ``{"state":
  "running", "attempt": N + 1}`` and goes on (the next attempt taking over first appends
  that event if nobody had). A worker stopped by SIGTERM appends the same event at once.
* a job of the in-process pool cannot be resumed (nothing else could claim it): its lease
  is final, the stream ends FAILED with an ``error`` event ``{"type": "producer_lost"}``.

A worker whose renewal finds the lease lost (it was presumed dead and another worker took
the job over) stops its attempt and leaves the job to the other one (``run`` returns
``RUNNING``; the Redis worker does not acknowledge the entry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any

from .._errors import LogError, StreamClosedError
from .._sse import json_dumps
from .._tasks import cancel_and_wait
from ..log import EventLog, LogEntry, StreamState
from ..log._protocol import PRODUCER_LOST
from ._context import JobContext
from ._model import JobRecord, JobState
from ._registry import JobRegistry, JobSpec
from ._stats import JobStatistics
from ._store import JobStore

__all__ = ["JobRunner"]

logger = logging.getLogger("mianzhang.jobs")


class JobRunner:
    def __init__(
        self,
        registry: JobRegistry,
        store: JobStore,
        log: EventLog,
        *,
        resources: Mapping[str, Any] | None = None,
        worker_name: str = "local",
        cancel_poll: float = 0.5,
        requeue_on_shutdown: bool = False,
        stats: JobStatistics | None = None,
        lease_ttl: float = 5.0,
    ) -> None:
        self.stats = stats if stats is not None else JobStatistics()
        self.registry = registry
        self.store = store
        self.log = log
        self.resources = resources or {}
        self.worker_name = worker_name
        self.cancel_poll = cancel_poll
        self.requeue_on_shutdown = requeue_on_shutdown
        self.lease_ttl = lease_ttl
        self.owner = f"jobs:{secrets.token_hex(8)}"  # this runner, as the leases' owner

    async def _event(self, record: JobRecord, event: str, data: dict[str, Any]) -> None:
        with contextlib.suppress(StreamClosedError):
            await self.log.append(record.stream, json_dumps(data), event=event)

    async def _finish_cancelled(self, record: JobRecord) -> None:
        done = await self.store.transition(record.id, JobState.CANCELLED)
        if done is not None:
            await self._event(record, "state", {"state": "cancelled", "attempt": record.attempt})
        with contextlib.suppress(LogError):
            await self.log.close(record.stream, state=StreamState.CANCELLED)

    async def _fail(self, record: JobRecord, kind: str, message: str) -> None:
        error = {"type": kind, "message": message}
        if await self.store.transition(record.id, JobState.FAILED, error=error) is not None:
            await self._event(record, "error", error)
        with contextlib.suppress(LogError):
            await self.log.close(record.stream)

    async def run(self, job_id: str, *, worker: str | None = None) -> JobState | None:
        """Run ``job_id`` if it is not terminal; return its final state (``None``: unknown id,
        or left running for another worker). ``worker`` names who runs it (default:
        ``worker_name``)."""
        stats = self.stats
        stats.running += 1
        state: JobState | None = None
        try:
            state = await self._run(job_id, worker)
            return state
        finally:
            stats.running -= 1
            if state is not None and state.terminal:
                stats.finished[state.value] = stats.finished.get(state.value, 0) + 1

    async def _run(self, job_id: str, worker: str | None) -> JobState | None:
        record = await self.store.get(job_id)
        if record is None:
            return None
        if record.state.terminal:
            return record.state
        if record.cancel_requested:
            await self._finish_cancelled(record)
            return JobState.CANCELLED
        spec = self.registry.get(record.type)
        if spec is None:
            await self._fail(record, "unknown_job_type", f"no job type {record.type!r} here")
            return JobState.FAILED
        running = await self.store.transition(
            job_id,
            JobState.RUNNING,
            attempt=record.attempt + 1,
            started=time.time(),
            worker=worker or self.worker_name,
        )
        if running is None:
            return None
        record = running
        await self._take_lease(record)
        await self._event(record, "state", {"state": "running", "attempt": record.attempt})
        task = asyncio.ensure_future(
            _call(spec, JobContext(record, self.log, self.store, self.resources))
        )
        try:
            outcome = await self._supervise(record, task)
        except asyncio.CancelledError:
            await cancel_and_wait(task)
            await asyncio.shield(self._interrupted(record))
            raise
        if outcome == "lost":
            return JobState.RUNNING  # another worker took the job over
        return await self._settle(record, task, outcome == "cancel")

    async def _supervise(self, record: JobRecord, task: asyncio.Future[Any]) -> str:
        """Wait for the job function; meanwhile check for a cancel request every
        ``cancel_poll`` and renew the lease every ``lease_ttl / 3`` seconds. Returns
        ``"done"``, ``"cancel"`` or ``"lost"`` (the function is cancelled and awaited then)."""
        every = self.lease_ttl / 3
        next_renew = time.monotonic() + every
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=min(self.cancel_poll, every))
            if done:
                break
            outcome = "done"
            if time.monotonic() >= next_renew:
                next_renew = time.monotonic() + every
                outcome = "lost" if await self._lease_lost(record) else outcome
            current = await self.store.get(record.id)
            if outcome == "done" and current is not None and current.cancel_requested:
                outcome = "cancel"
            if outcome != "done":
                await cancel_and_wait(task)
                return outcome
        return "done"

    def _lost_entries(self, record: JobRecord) -> list[LogEntry]:
        if self.requeue_on_shutdown:  # the queue re-delivers it: the stream goes on
            state = {"state": "requeued", "attempt": record.attempt, "reason": PRODUCER_LOST}
            return [LogEntry(json_dumps(state), "state")]
        error = {"type": PRODUCER_LOST, "message": "the worker running this job stopped"}
        return [LogEntry(json_dumps(error), "error")]

    async def _take_lease(self, record: JobRecord) -> None:
        """The attempt's lease on the job's stream (see the module docstring)."""
        try:
            taken = await self.log.lease(
                record.stream,
                self.owner,
                ttl=self.lease_ttl,
                entries=self._lost_entries(record),
                final=not self.requeue_on_shutdown,
            )
        except LogError:
            taken = False
        if not taken:
            logger.warning("job %s runs without the lease of its stream", record.id)

    async def _lease_lost(self, record: JobRecord) -> bool:
        """Renew the attempt's lease; whether it was lost (a failed renewal is retried)."""
        try:
            lost = await self.log.renew_leases(self.owner, [record.stream], ttl=self.lease_ttl)
        except LogError:
            logger.warning("job %s: cannot renew its lease", record.id, exc_info=True)
            return False
        if lost:
            logger.warning("job %s: its lease was lost; leaving it to another worker", record.id)
        return bool(lost)

    async def _interrupted(self, record: JobRecord) -> None:
        """The runner was cancelled (shutdown): requeued (the ``requeued`` state now, the
        stream stays open) or failed as ``interrupted``."""
        if not self.requeue_on_shutdown:
            await self._fail(record, "interrupted", "the worker shut down")
            return
        with contextlib.suppress(LogError):
            await self.log.release_lease(record.stream, self.owner, apply=True)

    async def _settle(
        self, record: JobRecord, task: asyncio.Future[Any], cancel_requested: bool
    ) -> JobState:
        if cancel_requested or (
            task.cancelled() or isinstance(task.exception(), StreamClosedError)
        ):
            await self._finish_cancelled(record)
            return JobState.CANCELLED
        exc = task.exception()
        if isinstance(exc, TimeoutError):
            await self._fail(record, "timeout", "the job exceeded its timeout")
            return JobState.FAILED
        if exc is not None:
            logger.error("job %s (%s) failed", record.id, record.type, exc_info=exc)
            await self._fail(record, type(exc).__name__, str(exc))
            return JobState.FAILED
        result = task.result()
        try:
            encoded = json_dumps({"result": result})
        except TypeError as err:
            await self._fail(record, "invalid_result", f"result is not JSON: {err}")
            return JobState.FAILED
        if await self.store.transition(record.id, JobState.SUCCEEDED, result=result) is not None:
            with contextlib.suppress(StreamClosedError):
                await self.log.append(record.stream, encoded, event="complete")
        with contextlib.suppress(LogError):
            await self.log.close(record.stream)
        return JobState.SUCCEEDED


async def _call(spec: JobSpec, ctx: JobContext) -> Any:
    """The job function, under the job type's timeout."""
    if spec.timeout is None:
        return await spec.func(ctx)
    async with asyncio.timeout(spec.timeout):
        return await spec.func(ctx)
