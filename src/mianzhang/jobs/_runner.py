"""Run one attempt of one job, owning the job's task from start to its final event.

Guarantees: exactly one terminal transition per job (the store refuses a second one); the
job's stream ends with ``complete``, ``error`` or a ``cancelled`` state event and is then
closed; a cancel request (from any process, through the store) cancels the job function
within ``cancel_poll`` seconds and its ``finally`` runs; if the runner itself is cancelled
(worker shutdown) the job function is cancelled and awaited before the runner returns, and the
job is either left ``running`` for another worker to claim (``requeue=True``, Redis) or failed
as ``interrupted`` (the in-process pool, where nothing could claim it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from .._errors import LogError, StreamClosedError
from .._sse import json_dumps
from ..log import EventLog, StreamState
from ._context import JobContext
from ._model import JobRecord, JobState
from ._registry import JobRegistry
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
    ) -> None:
        self.stats = stats if stats is not None else JobStatistics()
        self.registry = registry
        self.store = store
        self.log = log
        self.resources = resources or {}
        self.worker_name = worker_name
        self.cancel_poll = cancel_poll
        self.requeue_on_shutdown = requeue_on_shutdown

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
        await self._event(record, "state", {"state": "running", "attempt": record.attempt})
        ctx = JobContext(record, self.log, self.store, self.resources)

        async def call() -> Any:
            if spec.timeout is None:
                return await spec.func(ctx)
            async with asyncio.timeout(spec.timeout):
                return await spec.func(ctx)

        task = asyncio.ensure_future(call())
        cancel_requested = False
        try:
            while not task.done():
                done, _ = await asyncio.wait({task}, timeout=self.cancel_poll)
                if not done:
                    current = await self.store.get(job_id)
                    if current is not None and current.cancel_requested:
                        cancel_requested = True
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if not self.requeue_on_shutdown:
                await asyncio.shield(self._fail(record, "interrupted", "the worker shut down"))
            raise
        return await self._settle(record, task, cancel_requested)

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
