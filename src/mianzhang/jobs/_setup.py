"""The job service of one app, built from its settings, with everything it owns.

``JobHost.start(...)`` builds, for ``queue="local"``, a memory store and the in-process
:class:`LocalJobPool`; for ``queue="redis"``, the Redis store and queue and, when
``serve_locally``, one :class:`RedisJobWorker` running inside this process beside any
``mianzhang worker`` processes. ``aclose()`` stops and awaits every task it started and
closes its Redis connections; it does not close the log (its owner does, afterwards).

On shutdown a job running in the in-process pool is failed as ``interrupted`` (nothing else
could ever run it); one running in the embedded Redis worker is left pending in Redis and
re-run by another worker (or this server after a restart) once ``visibility_timeout`` passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from ..log import EventLog
from ._registry import JobRegistry
from ._runner import JobRunner
from ._service import JobService, LocalJobPool
from ._settings import JobsSettings
from ._stats import JobStatistics
from ._store import MemoryJobStore

if TYPE_CHECKING:
    from ._redis import RedisJobWorker

__all__ = ["JobHost"]

logger = logging.getLogger("mianzhang.jobs")


class JobHost:
    """Owner of one app's :class:`JobService` (``.service``) and of its workers."""

    def __init__(self, service: JobService, stack: contextlib.AsyncExitStack) -> None:
        self.service = service
        self._stack = stack

    @classmethod
    async def start(
        cls,
        settings: JobsSettings,
        log: EventLog,
        *,
        registry: JobRegistry,
        resources: Mapping[str, Any] | None = None,
        redis_url: str | None = None,
        prefix: str = "mz:",
    ) -> JobHost:
        """Build and start. ``redis_url`` is the Redis the shared log lives on (``None``
        when the log is not on Redis): ``queue="redis"`` without it is a
        :class:`ConfigError`, since workers elsewhere could not write progress readers see."""
        resources = dict(resources or {})
        stats = JobStatistics()
        async with contextlib.AsyncExitStack() as stack:
            if settings.queue == "redis":
                if redis_url is None:
                    raise ConfigError(
                        "jobs.queue 'redis' needs the Redis event log "
                        "(MIANZHANG_LOG_BACKEND=redis and MIANZHANG_REDIS_URL)"
                    )
                service = await _start_redis(
                    stack, settings, log, registry, resources, redis_url, prefix, stats
                )
            else:
                store = MemoryJobStore(keep_finished=settings.keep_finished)
                runner = JobRunner(
                    registry,
                    store,
                    log,
                    resources=resources,
                    cancel_poll=settings.cancel_poll,
                    stats=stats,
                )
                pool = await stack.enter_async_context(
                    LocalJobPool(
                        runner, concurrency=settings.concurrency, max_queued=settings.max_queued
                    )
                )
                service = JobService(
                    registry,
                    store,
                    log,
                    pool,
                    keep_events=settings.keep_finished,
                    resources=resources,
                    stats=stats,
                )
            host = cls(service, stack.pop_all())
        return host

    async def aclose(self) -> None:
        """Stop the workers (awaited) and close the Redis connections. Idempotent."""
        await self._stack.aclose()

    async def __aenter__(self) -> JobHost:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _start_redis(
    stack: contextlib.AsyncExitStack,
    settings: JobsSettings,
    log: EventLog,
    registry: JobRegistry,
    resources: dict[str, Any],
    redis_url: str,
    prefix: str,
    stats: JobStatistics,
) -> JobService:
    import redis.asyncio as aioredis

    from ._redis import RedisJobQueue, RedisJobStore, RedisJobWorker

    client = aioredis.Redis.from_url(redis_url)
    stack.push_async_callback(client.aclose)
    store = RedisJobStore(client, prefix=prefix, keep_finished=settings.keep_finished)
    queue = RedisJobQueue(client, prefix=prefix, max_queued=settings.max_queued)
    if settings.serve_locally:
        runner = JobRunner(
            registry,
            store,
            log,
            resources=resources,
            cancel_poll=settings.cancel_poll,
            requeue_on_shutdown=True,
            stats=stats,
        )
        worker = RedisJobWorker(
            client,
            runner,
            prefix=prefix,
            concurrency=settings.concurrency,
            visibility_timeout=settings.visibility_timeout,
        )
        task = asyncio.create_task(_serve(worker), name="jobs:redis-worker")

        async def stop_worker() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        stack.push_async_callback(stop_worker)
    return JobService(
        registry,
        store,
        log,
        queue,
        keep_events=settings.keep_finished,
        resources=resources,
        stats=stats,
    )


async def _serve(worker: RedisJobWorker) -> None:
    """Run the embedded worker until cancelled; a crash is logged and the worker restarted
    (after a second), so the server never silently stops taking jobs."""
    while True:
        try:
            await worker.run()
        except Exception:
            logger.exception("the embedded job worker crashed; restarting it in 1 s")
        await asyncio.sleep(1.0)
