"""A job worker process: Redis queue in, job events out to the Redis event log.

``run_worker`` owns everything it opens (Redis clients, the event log, worker tasks) and
releases it in ``finally``. SIGTERM/SIGINT stop taking jobs; running jobs are cancelled and
left pending in Redis, so another worker re-runs them after ``visibility_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping
from typing import Any

from ..log.redis import RedisEventLog
from ..log.redis._connect import close, connect
from ._redis import RedisJobStore, RedisJobWorker
from ._registry import JobRegistry
from ._runner import JobRunner

__all__ = ["run_worker"]


async def run_worker(
    redis_url: str,
    registry: JobRegistry,
    *,
    prefix: str = "mz:",
    concurrency: int = 4,
    visibility_timeout: float = 30.0,
    cancel_poll: float = 0.5,
    keep_finished: float = 3600.0,
    resources: Mapping[str, Any] | None = None,
    stop: asyncio.Event | None = None,
    consumer: str | None = None,
    lease_ttl: float = 5.0,
) -> None:
    """Run jobs from ``{prefix}jobs:queue`` until ``stop`` is set or SIGTERM/SIGINT arrives
    (see the module docstring); ``resources`` are handed to every job as ``ctx.resources``."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    client = connect(redis_url, decode_responses=False, client_name="mz-jobs")
    log = RedisEventLog(redis_url, prefix=prefix, lease_idle=lease_ttl)
    try:
        store = RedisJobStore(client, prefix=prefix, keep_finished=keep_finished)
        runner = JobRunner(
            registry,
            store,
            log,
            resources=resources,
            cancel_poll=cancel_poll,
            requeue_on_shutdown=True,
            lease_ttl=lease_ttl,
        )
        worker = RedisJobWorker(
            client,
            runner,
            prefix=prefix,
            concurrency=concurrency,
            visibility_timeout=visibility_timeout,
            consumer=consumer,
        )
        await worker.run(stop)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await log.aclose()
        await close(client)
