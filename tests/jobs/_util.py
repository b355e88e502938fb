"""Helpers shared by the job tests."""

from __future__ import annotations

import asyncio

from mianzhang.jobs import JobService
from mianzhang.log import LogEvent

__all__ = ["events_of"]


async def events_of(service: JobService, job_id: str, *, timeout: float = 20.0) -> list[LogEvent]:
    """Every event of the job's stream until it ends (bounded by ``timeout``); fails on a
    reset."""
    out: list[LogEvent] = []
    async with asyncio.timeout(timeout):
        async for item in service.log.follow(f"job:{job_id}"):
            assert isinstance(item, LogEvent)
            out.append(item)
    return out
