"""Job attempts hold the lease of their progress stream (``jobs/_runner.py``, "Liveness"):
a worker that stops renewing (frozen, cut off, killed) loses it, its readers are told at once
(``requeued`` for a job the queue re-delivers, the stream staying open; ``producer_lost`` and
FAILED for one nothing can re-run), the next attempt continues the same stream, and the
presumed-dead worker stops its attempt without acknowledging the job."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from mianzhang.jobs import JobContext, JobRegistry, JobRunner, JobState, MemoryJobStore
from mianzhang.jobs._model import JobRecord
from mianzhang.log import LogEvent, MemoryEventLog, StreamState
from tests._support.wait import eventually

registry = JobRegistry()
TTL = 0.3
QUICK_FROM = 2  # attempts from this one on take quick steps


@registry.job("steps")
async def steps(ctx: JobContext) -> dict[str, Any]:
    for i in range(1, 4):
        await ctx.progress(25 * i, f"step {i}")
        await asyncio.sleep(0.05 if ctx.attempt >= QUICK_FROM else 10)
    return {"done": True}


class FrozenLog(MemoryEventLog):
    """A log whose lease renewals by ``frozen`` never return: that owner is frozen or cut
    off (as a killed process: it stops renewing)."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen: str | None = None

    async def renew_leases(self, owner: str, streams: Sequence[str], *, ttl: float) -> set[str]:
        if owner == self.frozen:
            await asyncio.Event().wait()
        return await super().renew_leases(owner, streams, ttl=ttl)


async def submit(log: MemoryEventLog, store: MemoryJobStore) -> JobRecord:
    record = JobRecord(id="j1", type="steps", input={})
    await store.create(record)
    await log.create(record.stream)
    return record


async def states(log: MemoryEventLog, stream: str) -> list[Any]:
    _, events = await log.read(stream)
    return [json.loads(e.data) for e in events if e.event in ("state", "error")]


async def test_a_frozen_workers_job_is_requeued_and_continues_on_another_worker() -> None:
    log = FrozenLog()
    store = MemoryJobStore()
    record = await submit(log, store)
    frozen = JobRunner(registry, store, log, requeue_on_shutdown=True, lease_ttl=TTL)
    first = asyncio.create_task(frozen.run(record.id, worker="a"))
    follower = log.follow(record.stream)
    seen: list[LogEvent] = []

    async def saw_requeued() -> bool:
        item = await anext(follower)
        assert isinstance(item, LogEvent)
        seen.append(item)
        return item.event == "state" and json.loads(item.data)["state"] == "requeued"

    await eventually(lambda: _has_state(log, record.stream, "running"))
    log.frozen = frozen.owner
    await eventually(saw_requeued, timeout=10, interval=0)
    info = await log.info(record.stream)
    assert info is not None and info.state is StreamState.OPEN  # the job will be resumed
    assert (await store.get(record.id)).state is JobState.RUNNING  # type: ignore[union-attr]
    # the queue re-delivers it: another worker runs it to the end on the same stream
    relief = JobRunner(registry, store, log, requeue_on_shutdown=True, lease_ttl=TTL)
    assert await relief.run(record.id, worker="b") is JobState.SUCCEEDED
    first.cancel()  # the frozen worker finally stops: it appends nothing more
    await asyncio.gather(first, return_exceptions=True)
    await follower.aclose()
    assert [(s["state"], s["attempt"]) for s in await states(log, record.stream)] == [
        ("running", 1),
        ("requeued", 1),
        ("running", 2),
    ]
    _, events = await log.read(record.stream)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].event == "complete"
    await log.aclose()


async def test_a_worker_whose_job_was_taken_over_stops_and_leaves_it() -> None:
    log = MemoryEventLog()
    store = MemoryJobStore()
    record = await submit(log, store)
    runner = JobRunner(registry, store, log, requeue_on_shutdown=True, lease_ttl=TTL)
    attempt = asyncio.create_task(runner.run(record.id, worker="a"))
    await eventually(lambda: _has_state(log, record.stream, "running"))
    # another worker took the job over (the queue thought this one dead)
    assert await log.lease(record.stream, "jobs:other", ttl=30, final=False)
    async with asyncio.timeout(10):
        assert await attempt is JobState.RUNNING  # not acknowledged: not finished here
    assert (await store.get(record.id)).state is JobState.RUNNING  # type: ignore[union-attr]
    assert [s["state"] for s in await states(log, record.stream)] == ["running", "requeued"]
    await log.aclose()


async def test_a_stopped_redis_worker_says_requeued_at_once() -> None:
    log = MemoryEventLog()
    store = MemoryJobStore()
    record = await submit(log, store)
    runner = JobRunner(registry, store, log, requeue_on_shutdown=True, lease_ttl=30)
    attempt = asyncio.create_task(runner.run(record.id, worker="a"))
    await eventually(lambda: _has_state(log, record.stream, "running"))
    attempt.cancel()  # SIGTERM: the job stays running in the queue for another worker
    await asyncio.gather(attempt, return_exceptions=True)
    assert [s["state"] for s in await states(log, record.stream)] == ["running", "requeued"]
    assert await log.expire_lease(record.stream) is None  # no lease left behind
    await log.aclose()


async def test_an_in_process_job_whose_runner_stops_renewing_fails_its_stream() -> None:
    log = FrozenLog()
    store = MemoryJobStore()
    record = await submit(log, store)
    runner = JobRunner(registry, store, log, lease_ttl=TTL)  # the local pool's: final
    attempt = asyncio.create_task(runner.run(record.id))
    await eventually(lambda: _has_state(log, record.stream, "running"))
    log.frozen = runner.owner
    _, events = await asyncio.wait_for(_ended(log, record.stream), 10)
    assert events[-1].event == "error"
    assert json.loads(events[-1].data)["type"] == "producer_lost"
    info = await log.info(record.stream)
    assert info is not None and info.state is StreamState.FAILED
    attempt.cancel()
    await asyncio.gather(attempt, return_exceptions=True)
    await log.aclose()


async def _ended(log: MemoryEventLog, stream: str) -> tuple[None, list[LogEvent]]:
    async for _ in log.follow(stream):
        pass
    reset, events = await log.read(stream)
    assert reset is None
    return None, events


async def _has_state(log: MemoryEventLog, stream: str, state: str) -> bool:
    return state in [s.get("state") for s in await states(log, stream)]
