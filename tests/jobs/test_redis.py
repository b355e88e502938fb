"""Jobs on a real redis-server: the consumer-group worker, a dead worker's job re-run by
another (at least once), and what only the Redis store has (key expiry, the ``recent``
index). The store's contract, shared with the memory store, is in ``contract/``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from mianzhang.jobs import JobContext, JobRecord, JobRegistry, JobRunner, JobService, JobState
from mianzhang.jobs._redis import RedisJobQueue, RedisJobStore, RedisJobWorker
from mianzhang.log import LogEvent, RedisEventLog
from tests._support.wait import eventually

pytestmark = pytest.mark.redis

registry = JobRegistry()


@registry.job("add")
async def add(ctx: JobContext) -> dict[str, Any]:
    await ctx.progress(50, "adding")
    return {"sum": sum(ctx.input["values"]), "echo": ctx.input}


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_url)
    yield c
    await c.aclose()


@pytest.fixture
async def log(redis_url: str) -> AsyncIterator[RedisEventLog]:
    lg = RedisEventLog(redis_url)
    yield lg
    await lg.aclose()


async def test_a_finished_records_key_expires_after_keep_finished(
    client: aioredis.Redis,
) -> None:
    store = RedisJobStore(client, keep_finished=60)
    await store.create(JobRecord(id="j2", type="t", input={}))
    assert await client.ttl("mz:job:{j2}") == -1  # a live record never expires
    assert await store.transition("j2", JobState.SUCCEEDED, result=[1, 2]) is not None
    ttl = await client.ttl("mz:job:{j2}")
    assert 0 < ttl <= 60


async def _run_worker(worker: RedisJobWorker, until: Callable[[], Awaitable[bool]]) -> None:
    """Run ``worker`` until ``until()`` holds (bounded), then stop it and await it."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await eventually(until, timeout=20, interval=0.02)
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


async def test_worker_runs_submitted_jobs(client: aioredis.Redis, log: RedisEventLog) -> None:
    store = RedisJobStore(client)
    service = JobService(registry, store, log, RedisJobQueue(client))
    recs = [await service.submit("add", {"values": [i, i]}) for i in range(5)]
    worker = RedisJobWorker(client, JobRunner(registry, store, log), block=0.1, concurrency=2)

    async def all_done() -> bool:
        states = [(await service.get(r.id)).state for r in recs]
        return all(state.terminal for state in states)

    await _run_worker(worker, all_done)
    for i, r in enumerate(recs):
        got = await service.get(r.id)
        assert got.state is JobState.SUCCEEDED and got.result["sum"] == 2 * i
    assert worker.completed == 5
    pending = await client.xpending("mz:jobs:queue", RedisJobWorker.group)
    assert pending["pending"] == 0


async def test_entry_of_a_dead_consumer_is_reclaimed_and_rerun(
    client: aioredis.Redis, log: RedisEventLog
) -> None:
    store = RedisJobStore(client)
    service = JobService(registry, store, log, RedisJobQueue(client))
    rec = await service.submit("add", {"values": [2, 3]})
    # A worker that takes the job, starts it, and dies without acknowledging it.
    await client.xgroup_create("mz:jobs:queue", RedisJobWorker.group, id="0", mkstream=True)
    taken = await client.xreadgroup(RedisJobWorker.group, "dead", {"mz:jobs:queue": ">"}, count=1)
    assert taken and taken[0][1][0][1][b"id"].decode() == rec.id
    await store.transition(rec.id, JobState.RUNNING, attempt=1, worker="dead")

    worker = RedisJobWorker(
        client, JobRunner(registry, store, log), visibility_timeout=0.3, block=0.1
    )

    async def done() -> bool:
        return (await service.get(rec.id)).state.terminal

    await _run_worker(worker, done)
    got = await service.get(rec.id)
    assert got.state is JobState.SUCCEEDED and got.attempt == 2 and got.worker == worker.consumer
    _, events = await log.read(rec.stream)
    states = [json.loads(e.data) for e in events if isinstance(e, LogEvent) and e.event == "state"]
    assert states[-1] == {"state": "running", "attempt": 2}
    assert events[-1].event == "complete"


async def test_cancel_reaches_a_job_running_elsewhere(
    client: aioredis.Redis, log: RedisEventLog
) -> None:
    reg = JobRegistry()
    started = asyncio.Event()
    cleaned = asyncio.Event()

    @reg.job("wait")
    async def wait(ctx: JobContext) -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    store = RedisJobStore(client)
    service = JobService(reg, store, log, RedisJobQueue(client))
    rec = await service.submit("wait")
    other_service = JobService(reg, RedisJobStore(client), log, RedisJobQueue(client))
    worker = RedisJobWorker(client, JobRunner(reg, store, log, cancel_poll=0.05), block=0.1)

    async def cancelled() -> bool:
        if started.is_set() and not (await service.get(rec.id)).cancel_requested:
            await other_service.cancel(rec.id)
        return (await service.get(rec.id)).state is JobState.CANCELLED

    await _run_worker(worker, cancelled)
    assert cleaned.is_set()


async def test_a_late_heartbeat_never_makes_a_worker_run_its_own_job_twice(
    client: aioredis.Redis, log: RedisEventLog
) -> None:
    reg = JobRegistry()

    class Stalled(RedisJobWorker):
        """A loop too busy to refresh its entries; counts its finished takes."""

        takes = 0

        async def _heartbeat(self, entry_id: str) -> None:
            await asyncio.Event().wait()

        async def _take(self) -> tuple[str, str] | None:
            try:
                return await super()._take()
            finally:
                self.takes += 1

    async def redelivered() -> bool:  # idle past visibility_timeout: XAUTOCLAIM took it back
        pending = await client.xpending_range(
            "mz:jobs:queue", RedisJobWorker.group, min="-", max="+", count=10
        )
        return any(int(entry["times_delivered"]) >= 2 for entry in pending)

    @reg.job("nap")
    async def nap(ctx: JobContext) -> int:
        # Still running when the worker claims its own idle entry back, and for two more
        # turns of its loop: a worker that ran the entry again would have started it by then.
        await eventually(redelivered, timeout=10, interval=0.02)
        seen = worker.takes
        await eventually(lambda: worker.takes >= seen + 2, timeout=10)
        return ctx.attempt

    store = RedisJobStore(client)
    service = JobService(reg, store, log, RedisJobQueue(client))
    rec = await service.submit("nap")
    worker = Stalled(
        client, JobRunner(reg, store, log), visibility_timeout=0.1, block=0.05, concurrency=2
    )

    async def done() -> bool:
        return (await service.get(rec.id)).state.terminal

    await _run_worker(worker, done)
    got = await service.get(rec.id)
    assert got.state is JobState.SUCCEEDED and got.attempt == 1 and got.result == 1
    _, events = await log.read(rec.stream)
    runs = [e for e in events if isinstance(e, LogEvent) and '"running"' in e.data]
    assert len(runs) == 1


async def test_worker_recreates_its_group_after_redis_lost_everything(
    client: aioredis.Redis, log: RedisEventLog
) -> None:
    store = RedisJobStore(client)
    service = JobService(registry, store, log, RedisJobQueue(client))
    worker = RedisJobWorker(client, JobRunner(registry, store, log), block=0.05)
    first = await service.submit("add", {"values": [1]})
    state: dict[str, Any] = {}

    async def both_done() -> bool:
        if "second" not in state:
            if not (await service.get(first.id)).state.terminal:
                return False
            await client.flushall()  # a Redis restart without persistence: no group, no stream
            state["second"] = await service.submit("add", {"values": [2]})
        return (await service.get(state["second"].id)).state.terminal

    await _run_worker(worker, both_done)
    got = await service.get(state["second"].id)
    assert got.state is JobState.SUCCEEDED and got.result["sum"] == 2


async def test_the_recent_index_is_bounded_and_forgets_expired_ids(
    client: aioredis.Redis,
) -> None:
    store = RedisJobStore(client, max_recent=3)
    for i in range(5):
        await store.create(JobRecord(id=f"r{i}", type="t", input={}, created=1000.0 + i))
    assert [r.id for r in await store.recent(10)] == ["r4", "r3", "r2"]
    await client.delete("mz:job:{r3}")  # as an expired record would be
    assert [r.id for r in await store.recent(10)] == ["r4", "r2"]
    assert await client.zcard("mz:jobs:recent") == 2
