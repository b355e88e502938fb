"""The job API an app uses: submit, look up, cancel; and the in-process worker pool.

``JobService`` writes a record and a ``queued`` event, then hands the id to a queue: the
in-process :class:`LocalJobPool` (the embedded default) or Redis (``_redis.py``), whose workers
may live in other processes (``mianzhang worker``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from .._errors import JobNotFound, JobQueueFull, LogError, UnknownJobType
from .._sse import json_dumps
from .._tasks import AsyncResource
from ..log import EventLog
from ._model import JobRecord, JobState, new_job_id
from ._registry import JobRegistry
from ._runner import JobRunner
from ._stats import JobStatistics
from ._store import JobStore

__all__ = ["JobQueue", "JobService", "LocalJobPool"]


class JobQueue(Protocol):
    async def put(self, job_id: str) -> None:
        """Hand a stored job to the workers; raises ``JobQueueFull`` if it cannot be taken."""
        ...


class LocalJobPool(AsyncResource):
    """``concurrency`` worker tasks in this process taking ids from a queue of at most
    ``max_queued`` waiting jobs. Owned by the app: ``async with pool:`` starts the workers,
    leaving cancels them and awaits them; a job interrupted that way is marked failed
    (``interrupted``), never left looking alive."""

    def __init__(self, runner: JobRunner, *, concurrency: int = 4, max_queued: int = 1000) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._runner = runner
        self._concurrency = concurrency
        self._queue: asyncio.Queue[str] = asyncio.Queue(max_queued)
        self._group: asyncio.TaskGroup | None = None
        self._workers: list[asyncio.Task[None]] = []
        self.running = 0

    async def put(self, job_id: str) -> None:
        if self._group is None:
            raise RuntimeError("LocalJobPool is not started (use 'async with pool')")
        try:
            self._queue.put_nowait(job_id)
        except asyncio.QueueFull:
            raise JobQueueFull(f"{self._queue.maxsize} jobs are already waiting") from None

    async def _work(self) -> None:
        while True:
            job_id = await self._queue.get()
            self.running += 1
            try:
                await self._runner.run(job_id)
            except Exception:  # a bug in the runner must not kill the worker
                logging.getLogger("mianzhang.jobs").exception("job runner crashed on %s", job_id)
            finally:
                self.running -= 1

    async def __aenter__(self) -> LocalJobPool:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._workers = [self._group.create_task(self._work()) for _ in range(self._concurrency)]
        return self

    async def aclose(self) -> None:
        """Cancel the workers and await them (a job running then is failed as
        ``interrupted`` by its runner). Idempotent."""
        group, self._group = self._group, None
        if group is None:
            return
        for task in self._workers:
            task.cancel()
        self._workers = []
        with contextlib.suppress(asyncio.CancelledError):
            await group.__aexit__(None, None, None)


class JobService:
    """Submit, inspect and cancel jobs. Cancellation reaches a running job in any process
    through the store (the runner polls it) and ends its event stream as ``cancelled``.

    ``resources`` are what job types' ``prepare`` hooks see at submission (the same mapping
    the runners hand to jobs, e.g. ``"llm"`` and ``"files"``)."""

    def __init__(
        self,
        registry: JobRegistry,
        store: JobStore,
        log: EventLog,
        queue: JobQueue,
        *,
        keep_events: float = 3600.0,
        resources: Mapping[str, Any] | None = None,
        stats: JobStatistics | None = None,
    ) -> None:
        self.stats = stats if stats is not None else JobStatistics()
        self.registry = registry
        self.store = store
        self.log = log
        self.queue = queue
        self.keep_events = keep_events
        self.resources: Mapping[str, Any] = resources if resources is not None else {}

    async def submit(self, job_type: str, job_input: dict[str, Any] | None = None) -> JobRecord:
        """Store a new job and queue it; returns its record (state ``queued``).

        Refused before anything is stored: :class:`UnknownJobType`,
        :class:`InvalidJobInput` (the type's input model), or whatever the type's ``prepare``
        raises (e.g. ``FileNotFound``). :class:`JobQueueFull` after storing: the record is
        then marked failed and its stream closed, so nothing is left looking alive."""
        spec = self.registry.get(job_type)
        if spec is None:
            raise UnknownJobType(job_type, [spec.name for spec in self.registry])
        checked = spec.validate_input(dict(job_input or {}))
        if spec.prepare is not None:
            checked = await spec.prepare(checked, self.resources)
        record = JobRecord(id=new_job_id(), type=job_type, input=checked)
        await self.log.create(record.stream, ttl_after_close=self.keep_events)
        await self.store.create(record)
        await self.log.append(
            record.stream, json_dumps({"state": "queued", "attempt": 0}), event="state"
        )
        try:
            await self.queue.put(record.id)
        except JobQueueFull:
            await self.store.transition(
                record.id,
                JobState.FAILED,
                error={"type": "queue_full", "message": "the job queue is full"},
            )
            with contextlib.suppress(LogError):
                await self.log.close(record.stream)
            raise
        self.stats.submitted += 1
        return record

    async def recent(self, limit: int = 50) -> list[JobRecord]:
        """Up to ``limit`` jobs whose records are still kept, newest first."""
        return await self.store.recent(limit)

    async def get(self, job_id: str) -> JobRecord:
        record = await self.store.get(job_id)
        if record is None:
            raise JobNotFound(job_id)
        return record

    async def cancel(self, job_id: str) -> JobRecord:
        """Request cancellation. A queued job is cancelled at once; a running one within the
        runner's ``cancel_poll``; a finished one is returned unchanged."""
        record = await self.get(job_id)
        if record.state.terminal:
            return record
        await self.store.update(job_id, cancel_requested=True)
        if record.state is JobState.QUEUED:
            done = await self.store.transition(job_id, JobState.CANCELLED)
            if done is not None:
                with contextlib.suppress(LogError):
                    await self.log.append(
                        record.stream,
                        json_dumps({"state": "cancelled", "attempt": 0}),
                        event="state",
                    )
                    await self.log.close(record.stream)
        return await self.get(job_id)
