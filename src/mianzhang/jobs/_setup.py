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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from .._tasks import AsyncResource, own_task
from ..log import EventLog
from ._registry import JobRegistry
from ._runner import JobRunner
from ._service import JobQueue, JobService, LocalJobPool
from ._settings import JobsSettings
from ._stats import JobStatistics
from ._store import JobStore, MemoryJobStore

if TYPE_CHECKING:
    from ._redis import RedisJobWorker

__all__ = ["JobHost"]

logger = logging.getLogger("mianzhang.jobs")


class JobHost(AsyncResource):
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
        lease_ttl: float = 5.0,
    ) -> JobHost:
        """Build and start. ``redis_url`` is the Redis the shared log lives on (``None``
        when the log is not on Redis): ``queue="redis"`` without it is a
        :class:`ConfigError`, since workers elsewhere could not write progress readers see.
        If starting fails, whatever was started is stopped again before the error goes on."""
        parts = _Parts(settings, log, registry, dict(resources or {}), JobStatistics(), lease_ttl)
        async with contextlib.AsyncExitStack() as stack:
            if settings.queue != "redis":
                service = await _start_local(stack, parts)
            elif redis_url is None:
                raise ConfigError(
                    "jobs.queue 'redis' needs the Redis event log "
                    "(MIANZHANG_LOG_BACKEND=redis and MIANZHANG_REDIS_URL)"
                )
            else:
                service = await _start_redis(stack, parts, redis_url, prefix)
            host = cls(service, stack.pop_all())
        return host

    async def aclose(self) -> None:
        """Stop the workers (awaited) and close the Redis connections. Idempotent."""
        await self._stack.aclose()


@dataclass(frozen=True)
class _Parts:
    """What every job service of an app is built from (one statistics object for all)."""

    settings: JobsSettings
    log: EventLog
    registry: JobRegistry
    resources: dict[str, Any]
    stats: JobStatistics
    lease_ttl: float

    def runner(self, store: JobStore, *, requeue_on_shutdown: bool = False) -> JobRunner:
        return JobRunner(
            self.registry,
            store,
            self.log,
            resources=self.resources,
            cancel_poll=self.settings.cancel_poll,
            requeue_on_shutdown=requeue_on_shutdown,
            stats=self.stats,
            lease_ttl=self.lease_ttl,
        )

    def service(self, store: JobStore, queue: JobQueue) -> JobService:
        return JobService(
            self.registry,
            store,
            self.log,
            queue,
            keep_events=self.settings.keep_finished,
            resources=self.resources,
            stats=self.stats,
        )


async def _start_local(stack: contextlib.AsyncExitStack, parts: _Parts) -> JobService:
    """A memory store and the in-process pool (owned by ``stack``)."""
    settings = parts.settings
    store = MemoryJobStore(keep_finished=settings.keep_finished)
    pool = LocalJobPool(
        parts.runner(store), concurrency=settings.concurrency, max_queued=settings.max_queued
    )
    return parts.service(store, await stack.enter_async_context(pool))


async def _start_redis(
    stack: contextlib.AsyncExitStack, parts: _Parts, redis_url: str, prefix: str
) -> JobService:
    """The Redis store and queue on one client, and the embedded worker when
    ``serve_locally`` (all owned by ``stack``)."""
    from ..log.redis._connect import close, connect
    from ._redis import RedisJobQueue, RedisJobStore, RedisJobWorker

    settings = parts.settings
    client = connect(redis_url, decode_responses=False, client_name="mz-jobs")
    stack.push_async_callback(close, client)
    store = RedisJobStore(client, prefix=prefix, keep_finished=settings.keep_finished)
    queue = RedisJobQueue(client, prefix=prefix, max_queued=settings.max_queued)
    if settings.serve_locally:
        worker = RedisJobWorker(
            client,
            parts.runner(store, requeue_on_shutdown=True),
            prefix=prefix,
            concurrency=settings.concurrency,
            visibility_timeout=settings.visibility_timeout,
        )
        own_task(stack, _serve(worker), name="jobs:redis-worker")
    return parts.service(store, queue)


async def _serve(worker: RedisJobWorker) -> None:
    """Run the embedded worker until cancelled; a crash is logged and the worker restarted
    (after a second), so the server never silently stops taking jobs."""
    while True:
        try:
            await worker.run()
        except Exception:
            logger.exception("the embedded job worker crashed; restarting it in 1 s")
        await asyncio.sleep(1.0)
