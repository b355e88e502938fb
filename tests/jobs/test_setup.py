"""``JobHost``: an app's job service built from ``JobsSettings``, in-process or on a real
redis-server (with the embedded worker), and what it leaves behind when it closes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from mianzhang import ConfigError, JobQueueFull
from mianzhang.jobs import (
    JobContext,
    JobHost,
    JobRecord,
    JobRegistry,
    JobService,
    JobsSettings,
    JobState,
    RedisJobStore,
)
from mianzhang.log import LogEvent, MemoryEventLog, RedisEventLog
from tests._support.wait import eventually

registry = JobRegistry()


@registry.job("steps")
async def steps(ctx: JobContext) -> dict[str, Any]:
    n = int(ctx.input.get("n", 3))
    for i in range(1, n + 1):
        await asyncio.sleep(float(ctx.input.get("interval", 0)))
        await ctx.progress(100 * i / n, f"step {i}")
    return {"n": n, "attempt": ctx.attempt, "seen": ctx.resources.get("token")}


def state_reaches(
    service: JobService, job_id: str, pred: Callable[[JobRecord], bool]
) -> Callable[[], Awaitable[bool]]:
    """A check for ``eventually``: whether the job's record satisfies ``pred``."""

    async def check() -> bool:
        return pred(await service.get(job_id))

    return check


def terminal(record: JobRecord) -> bool:
    return record.state.terminal


async def test_local_host_runs_jobs_with_resources_and_fails_interrupted_ones() -> None:
    log = MemoryEventLog()
    settings = JobsSettings(concurrency=1, max_queued=1)
    host = await JobHost.start(settings, log, registry=registry, resources={"token": "t"})
    try:
        service = host.service
        rec = await service.submit("steps", {"n": 2})
        await eventually(state_reaches(service, rec.id, terminal), timeout=15)
        done = await service.get(rec.id)
        assert done.state is JobState.SUCCEEDED and done.result == {
            "n": 2,
            "attempt": 1,
            "seen": "t",
        }
        long = await service.submit("steps", {"n": 1000, "interval": 0.01})
        running = state_reaches(service, long.id, lambda r: r.state is JobState.RUNNING)
        await eventually(running, timeout=15)
        await service.submit("steps", {"n": 1})  # waits: the one slot is busy
        with pytest.raises(JobQueueFull):
            await service.submit("steps", {"n": 1})
    finally:
        await host.aclose()
        await host.aclose()  # idempotent
    interrupted = await service.get(long.id)
    assert interrupted.state is JobState.FAILED and interrupted.error is not None
    assert interrupted.error["type"] == "interrupted"
    assert [r.id for r in await service.recent()][-2:] == [long.id, rec.id]
    await log.aclose()


async def test_redis_queue_needs_the_redis_log() -> None:
    with pytest.raises(ConfigError, match="LOG_BACKEND=redis"):
        await JobHost.start(JobsSettings(queue="redis"), MemoryEventLog(), registry=registry)


@pytest.fixture
async def redis_log(redis_url: str) -> AsyncIterator[RedisEventLog]:
    log = RedisEventLog(redis_url)
    yield log
    await log.aclose()


Start = Callable[..., Awaitable[JobHost]]


@pytest.fixture
async def start(redis_url: str, redis_log: RedisEventLog) -> AsyncIterator[Start]:
    hosts: list[JobHost] = []

    async def start_host(**overrides: Any) -> JobHost:
        settings = JobsSettings(queue="redis", visibility_timeout=1.0, **overrides)
        host = await JobHost.start(settings, redis_log, registry=registry, redis_url=redis_url)
        hosts.append(host)
        return host

    yield start_host
    for host in hosts:
        await host.aclose()


@pytest.mark.redis
async def test_redis_host_serves_locally_and_lists_recent_jobs(start: Start) -> None:
    host = await start()
    ids = [(await host.service.submit("steps", {"n": 2})).id for _ in range(3)]
    for job_id in ids:
        await eventually(state_reaches(host.service, job_id, terminal), timeout=15)
        done = await host.service.get(job_id)
        assert done.state is JobState.SUCCEEDED and done.worker is not None
    assert [r.id for r in await host.service.recent(10)] == ids[::-1]
    assert [r.id for r in await host.service.recent(2)] == ids[:0:-1]


@pytest.mark.redis
async def test_redis_queue_is_bounded_across_instances(start: Start, redis_url: str) -> None:
    a = await start(serve_locally=False, max_queued=2)
    b = await start(serve_locally=False, max_queued=2)
    await a.service.submit("steps")
    await b.service.submit("steps")
    with pytest.raises(JobQueueFull):
        await a.service.submit("steps")
    refused = (await a.service.recent(1))[0]
    assert refused.state is JobState.FAILED and refused.error is not None
    assert refused.error["type"] == "queue_full"
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.xlen("mz:jobs:queue") == 2
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_a_job_running_when_its_server_stops_is_finished_by_the_next_one(
    start: Start, redis_log: RedisEventLog, redis_url: str
) -> None:
    first = await start()
    rec = await first.service.submit("steps", {"n": 40, "interval": 0.05})
    progressed = state_reaches(first.service, rec.id, lambda r: (r.progress or 0) > 0)
    await eventually(progressed, timeout=15)
    await first.aclose()  # shutdown: the job is left running (pending in Redis), not failed
    client = aioredis.Redis.from_url(redis_url)
    try:
        left = await RedisJobStore(client).get(rec.id)
    finally:
        await client.aclose()
    assert left is not None and left.state is JobState.RUNNING and left.attempt == 1
    second = await start()
    await eventually(state_reaches(second.service, rec.id, terminal), timeout=30)
    done = await second.service.get(rec.id)
    assert done.state is JobState.SUCCEEDED and done.attempt == 2
    assert done.worker != left.worker
    _, events = await redis_log.read(rec.stream, limit=10_000)
    runs = [
        json.loads(e.data)["attempt"]
        for e in events
        if isinstance(e, LogEvent) and e.event == "state" and '"running"' in e.data
    ]
    assert runs == [1, 2]
    assert events[-1].event == "complete"
