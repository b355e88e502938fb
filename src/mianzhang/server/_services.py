"""The long-lived parts of one server instance, built at startup and closed at shutdown.

:func:`open_services` wires them in one place with an :class:`~contextlib.AsyncExitStack`:
each service is registered for closing as soon as it is built, so a failure while building
closes what was built so far, and shutdown closes them in the reverse order:

1. the job host (its workers use the log, the files and the gateway), and the lease
   sweeper (it ends the streams of producers that died on any instance, see
   ``mianzhang.log.LeaseSweeper``);
2. the task that drains uploads once the supervisor drains (cancelled and awaited);
3. a bounded wait (``producer_drain_timeout``) for running producers to finish by themselves
   (their readers have moved to other instances), then the stream host (cancels the rest);
4. the chat store (producers' ``on_end`` hooks write to it until the host is closed), the
   files (interrupted uploads publish a last event, so before the log), the LLM gateway, the
   rate limiter;
5. the event log, then the event-loop lag monitor (``mianzhang_event_loop_lag_*`` metrics,
   see ``server._loop_lag``: one timer, cancelled), last.

Every step runs even when an earlier one raised.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from .._responses import StreamSupervisor
from .._tasks import own_task
from ..channels import ChannelHub
from ..chats import ChatStore, open_chat_store
from ..files import FilesService
from ..jobs import JobHost, JobService, job_registry, job_resources
from ..llm import LLMService
from ..log import EventLog, LeaseSweeper, MemoryEventLog
from ..log.serve import StreamHost
from ._auth import Authenticator
from ._limits import RateLimiter
from ._loop_lag import LoopLagMonitor
from ._metrics import register_stream_metrics
from ._settings import Settings

__all__ = ["Services", "open_services"]


@dataclass
class Services:
    """What routes reach through ``request.app.state.services`` (see ``server._deps``)."""

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
    chats: ChatStore


def _open_log(settings: Settings) -> EventLog:
    if settings.log_backend == "redis":
        from ..log.redis import RedisEventLog

        assert settings.redis_url is not None  # checked by Settings
        return RedisEventLog(
            settings.redis_url,
            prefix=settings.redis_prefix,
            lease_idle=settings.producer_lease_ttl,  # followers check a lease once that idle
        )
    return MemoryEventLog()


def _redis_url(settings: Settings) -> str | None:
    """The Redis shared by limits and jobs: only when the log is on Redis."""
    return settings.redis_url if settings.log_backend == "redis" else None


def _stream_host(settings: Settings, log: EventLog, supervisor: StreamSupervisor) -> StreamHost:
    return StreamHost(
        log,
        supervisor=supervisor,
        grace_period=settings.llm.grace_period,
        poll_interval=settings.producer_poll_interval,
        ping=settings.stream_ping,
        send_timeout=settings.send_timeout,
        lease_ttl=settings.producer_lease_ttl,
    )


async def _let_producers_finish(host: StreamHost, seconds: float) -> None:
    """Give running producers ``seconds`` to end by themselves."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await host.producers.wait_idle()


def _drain_files_on_drain(
    stack: contextlib.AsyncExitStack, supervisor: StreamSupervisor, files: FilesService
) -> None:
    """A task, owned by ``stack``, that drains uploads once the supervisor starts draining;
    cancelled and awaited when the stack closes."""

    async def drain_files_when_draining() -> None:
        await supervisor.wait_draining()
        await files.drain()

    own_task(stack, drain_files_when_draining(), name="files:drain")


def _channel_hub(settings: Settings, log: EventLog) -> ChannelHub:
    return ChannelHub(
        log,
        max_events=settings.channels.max_events,
        retention=settings.channels.retention,
        idempotency_ttl=settings.channels.idempotency_ttl,
    )


async def _start_jobs(
    settings: Settings, log: EventLog, llm: LLMService, files: FilesService | None
) -> JobHost:
    return await JobHost.start(
        settings.jobs,
        log,
        registry=job_registry(settings.jobs.include),
        resources=job_resources(llm.gateway, files),
        redis_url=_redis_url(settings),
        prefix=settings.redis_prefix,
        lease_ttl=settings.producer_lease_ttl,
    )


def _open_files(
    settings: Settings, log: EventLog, stack: contextlib.AsyncExitStack
) -> FilesService | None:
    """The files service (closed by ``stack``), if files are enabled."""
    if not settings.files.enabled:
        return None
    files = FilesService(settings.files, log, lease_ttl=settings.producer_lease_ttl)
    stack.push_async_callback(files.aclose)
    return files


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Build every service; on exit close them in reverse order (see the module docstring)."""
    async with contextlib.AsyncExitStack() as stack:
        supervisor = StreamSupervisor(retry_ms=settings.reconnect_retry_ms)
        metrics = CollectorRegistry()
        monitor = LoopLagMonitor(metrics, interval=settings.loop_lag_interval)
        await stack.enter_async_context(monitor)  # closed last: it watches the shutdown too
        log = _open_log(settings)
        stack.push_async_callback(log.aclose)
        limiter = RateLimiter(
            settings.limits, redis_url=_redis_url(settings), prefix=settings.redis_prefix
        )
        stack.push_async_callback(limiter.aclose)
        llm = LLMService(settings.llm, metrics_registry=metrics)
        stack.push_async_callback(llm.aclose)
        # before the host: producers' on_end hooks write to the chats until the host is closed
        chats = await stack.enter_async_context(
            open_chat_store(
                settings.chats, redis_url=_redis_url(settings), prefix=settings.redis_prefix
            )
        )
        files = _open_files(settings, log, stack)
        host = _stream_host(settings, log, supervisor)
        stack.push_async_callback(host.aclose)
        stack.push_async_callback(_let_producers_finish, host, settings.producer_drain_timeout)
        if files is not None:
            _drain_files_on_drain(stack, supervisor, files)
        jobs = await stack.enter_async_context(await _start_jobs(settings, log, llm, files))
        sweeper = LeaseSweeper(log, interval=settings.producer_lease_ttl / 3)
        await stack.enter_async_context(sweeper)
        stats = (files.stats if files else None, host.stats, jobs.service.stats)
        register_stream_metrics(metrics, supervisor, log, *stats)
        yield Services(
            settings=settings,
            log=log,
            supervisor=supervisor,
            host=host,
            metrics=metrics,
            llm=llm,
            files=files,
            auth=Authenticator(settings.auth),
            channels=_channel_hub(settings, log),
            limiter=limiter,
            jobs=jobs.service,
            chats=chats,
        )
