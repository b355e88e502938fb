"""``mianzhang worker``: run jobs from the Redis queue with the server's settings.

The worker builds what the built-in jobs need from the same ``MIANZHANG_*`` settings as
``mianzhang serve`` (the LLM gateway from ``llm``, file storage from ``files``, extra job
types from ``jobs.include``) and owns them: they are closed when it stops. SIGTERM/SIGINT
stop it (running jobs stay pending in Redis for another worker, see ``run_worker``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer
from prometheus_client import CollectorRegistry

from .._errors import ConfigError

if TYPE_CHECKING:
    from ..jobs import JobRegistry
    from ..server import Settings

__all__ = ["run_worker_command", "worker"]


def worker(
    redis_url: Annotated[
        str | None,
        typer.Option(metavar="URL", help="The server's Redis [MIANZHANG_REDIS_URL]."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(metavar="N", help="Jobs run at once [MIANZHANG_JOBS__CONCURRENCY]."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Consumer name (default: host-pid-random)."),
    ] = None,
) -> None:
    """Take jobs from Redis and run them (scale-out for `POST /v1/jobs`).

    Reads the same MIANZHANG_* settings as `serve` (Redis prefix, LLM models, file storage,
    jobs.include), so it knows the same job types and resources as the server. SIGTERM stops
    taking jobs; running ones are left for another worker. Exit status 2 on bad settings.
    """
    raise typer.Exit(run_worker_command(redis_url=redis_url, concurrency=concurrency, name=name))


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the worker runs: validated settings, the queue's Redis and the job types."""

    settings: Settings
    redis_url: str
    registry: JobRegistry
    concurrency: int


def run_worker_command(
    *, redis_url: str | None, concurrency: int | None, name: str | None = None
) -> int:
    """The command's body; returns the exit status (2: bad settings)."""
    try:
        plan = _plan(redis_url, concurrency)
    except ConfigError as exc:
        typer.echo(f"mianzhang worker: {exc}", err=True)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    typer.echo(
        f"mianzhang worker: jobs {', '.join(spec.name for spec in plan.registry)}"
        f" from {plan.settings.redis_prefix}jobs:queue",
        err=True,
    )
    asyncio.run(_work(plan, name))
    return 0


def _plan(redis_url: str | None, concurrency: int | None) -> _Plan:
    """Settings (``--redis-url`` over the environment) and job types; :class:`ConfigError`."""
    from ..jobs import job_registry
    from ..server import load_settings

    overrides: dict[str, object] = {}
    if redis_url is not None:
        overrides["redis_url"] = redis_url
    settings = load_settings(**overrides)
    if not settings.redis_url:
        raise ConfigError("mianzhang worker needs MIANZHANG_REDIS_URL (or --redis-url)")
    if concurrency is not None and concurrency < 1:
        raise ConfigError("--concurrency must be >= 1")
    registry = job_registry(settings.jobs.include)
    return _Plan(settings, settings.redis_url, registry, concurrency or settings.jobs.concurrency)


async def _work(plan: _Plan, name: str | None) -> None:
    """Run the worker until it is stopped; the LLM gateway and file storage it made are
    closed in ``finally``, whatever ended it."""
    from ..files import FilesService
    from ..jobs import job_resources
    from ..jobs._worker import run_worker
    from ..llm import LLMService

    settings = plan.settings
    llm = LLMService(settings.llm, metrics_registry=CollectorRegistry())
    files = FilesService(settings.files) if settings.files.enabled else None
    try:
        await run_worker(
            plan.redis_url,
            plan.registry,
            prefix=settings.redis_prefix,
            concurrency=plan.concurrency,
            visibility_timeout=settings.jobs.visibility_timeout,
            cancel_poll=settings.jobs.cancel_poll,
            keep_finished=settings.jobs.keep_finished,
            resources=job_resources(llm.gateway, files),
            consumer=name,
            lease_ttl=settings.producer_lease_ttl,
        )
    finally:
        try:
            if files is not None:
                await files.aclose()
        finally:
            await llm.aclose()
