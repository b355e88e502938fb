"""``mianzhang worker``: run jobs from the Redis queue with the server's settings.

The worker builds what the built-in jobs need from the same ``MIANZHANG_*`` settings as
``mianzhang serve`` (the LLM gateway from ``llm``, file storage from ``files``, extra job
types from ``jobs.include``) and owns them: they are closed when it stops. SIGTERM/SIGINT
stop it (running jobs stay pending in Redis for another worker, see ``run_worker``).
"""

from __future__ import annotations

import asyncio
import logging

import typer
from prometheus_client import CollectorRegistry

from ._errors import ConfigError

__all__ = ["run_worker_command"]


def run_worker_command(
    *, redis_url: str | None, concurrency: int | None, name: str | None = None
) -> int:
    """The command's body; returns the exit status (2: bad settings)."""
    from .server import Settings, load_settings

    overrides: dict[str, object] = {}
    if redis_url is not None:
        overrides["redis_url"] = redis_url
    try:
        settings = load_settings(**overrides)
        url = settings.redis_url
        if not url:
            raise ConfigError("mianzhang worker needs MIANZHANG_REDIS_URL (or --redis-url)")
        if concurrency is not None and concurrency < 1:
            raise ConfigError("--concurrency must be >= 1")
        from .jobs import job_registry

        registry = job_registry(settings.jobs.include)
    except ConfigError as exc:
        typer.echo(f"mianzhang worker: {exc}", err=True)
        return 2

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    typer.echo(
        f"mianzhang worker: jobs {', '.join(spec.name for spec in registry)}"
        f" from {settings.redis_prefix}jobs:queue",
        err=True,
    )

    async def main(settings: Settings) -> None:
        from .files import FilesService
        from .jobs import job_resources
        from .jobs._worker import run_worker
        from .llm import LLMService

        llm = LLMService(settings.llm, metrics_registry=CollectorRegistry())
        files = FilesService(settings.files) if settings.files.enabled else None
        try:
            await run_worker(
                url,
                registry,
                prefix=settings.redis_prefix,
                concurrency=concurrency or settings.jobs.concurrency,
                visibility_timeout=settings.jobs.visibility_timeout,
                cancel_poll=settings.jobs.cancel_poll,
                keep_finished=settings.jobs.keep_finished,
                resources=job_resources(llm.gateway, files),
                consumer=name,
            )
        finally:
            try:
                if files is not None:
                    await files.aclose()
            finally:
                await llm.aclose()

    asyncio.run(main(settings))
    return 0
