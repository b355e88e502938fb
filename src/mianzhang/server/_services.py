"""The long-lived parts of one server instance, built at startup and closed at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from .._responses import StreamSupervisor
from ..channels import ChannelHub
from ..files import FilesService
from ..jobs import JobHost, JobService, job_registry, job_resources
from ..llm import LLMService
from ..log import EventLog, MemoryEventLog
from ..log.serve import StreamHost
from ._auth import Authenticator
from ._limits import RateLimiter
from ._metrics import register_stream_metrics
from ._settings import Settings

__all__ = ["Services", "open_services"]


@dataclass
class Services:
    """What routes reach through ``request.app.state.services``."""

    settings: Settings
    log: EventLog
    supervisor: StreamSupervisor
    host: StreamHost
    metrics: CollectorRegistry
    llm: LLMService
    files: FilesService | None
    auth: Authenticator
    channels: ChannelHub
    limiter: RateLimiter
    jobs: JobService


def _open_log(settings: Settings) -> EventLog:
    if settings.log_backend == "redis":
        from ..log.redis import RedisEventLog

        assert settings.redis_url is not None  # checked by Settings
        return RedisEventLog(settings.redis_url, prefix=settings.redis_prefix)
    return MemoryEventLog()


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Build every service; on exit, stop producers, drain streams and close the log last."""
    supervisor = StreamSupervisor(retry_ms=settings.reconnect_retry_ms)
    log = _open_log(settings)
    metrics = CollectorRegistry()
    host = StreamHost(
        log,
        supervisor=supervisor,
        grace_period=settings.llm.grace_period,
        poll_interval=settings.producer_poll_interval,
        ping=settings.stream_ping,
        send_timeout=settings.send_timeout,
    )
    llm = LLMService(settings.llm, metrics_registry=metrics)
    files = FilesService(settings.files, log) if settings.files.enabled else None
    auth = Authenticator(settings.auth)
    redis_url = settings.redis_url if settings.log_backend == "redis" else None
    limiter = RateLimiter(settings.limits, redis_url=redis_url, prefix=settings.redis_prefix)
    # -- channels (owned by the channels feature) --
    channels = ChannelHub(
        log,
        max_events=settings.channels.max_events,
        retention=settings.channels.retention,
        idempotency_ttl=settings.channels.idempotency_ttl,
    )
    # -- end channels --
    # -- jobs (owned by the jobs feature) --
    jobs = await JobHost.start(
        settings.jobs,
        log,
        registry=job_registry(settings.jobs.include),
        resources=job_resources(llm.gateway, files),
        redis_url=redis_url,
        prefix=settings.redis_prefix,
    )
    # -- end jobs --
    register_stream_metrics(
        metrics,
        supervisor,
        log,
        files.stats if files else None,
        host.stats,
        jobs.service.stats,
    )
    drain_files: asyncio.Task[None] | None = None
    if files is not None:

        async def drain_files_when_draining() -> None:
            await supervisor.wait_draining()
            await files.drain()

        drain_files = asyncio.create_task(drain_files_when_draining(), name="files:drain")
    try:
        yield Services(
            settings,
            log,
            supervisor,
            host,
            metrics,
            llm,
            files,
            auth,
            channels,
            limiter,
            jobs.service,
        )
    finally:
        try:
            await jobs.aclose()  # -- jobs: its workers use the log, files and gateway
            if drain_files is not None:
                drain_files.cancel()
                await asyncio.gather(drain_files, return_exceptions=True)
            # producers get a bounded time to finish by themselves (readers moved elsewhere)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.producer_drain_timeout):
                    await host.producers.wait_idle()
            await host.aclose()
            if files is not None:
                await files.aclose()  # before the log: interrupted uploads publish a last event
            await llm.aclose()
            await limiter.aclose()
        finally:
            await log.aclose()
