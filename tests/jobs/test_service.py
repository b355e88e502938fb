"""Jobs on the in-process pool: progress through the log, outcomes, cancel, shutdown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mianzhang import JobQueueFull, UnknownJobType
from mianzhang.jobs import (
    JobContext,
    JobRegistry,
    JobRunner,
    JobService,
    JobState,
    LocalJobPool,
    MemoryJobStore,
)
from mianzhang.log import MemoryEventLog, StreamState
from tests.jobs._util import events_of

registry = JobRegistry()
gate: dict[str, asyncio.Event] = {}
finally_ran: list[str] = []


@registry.job("count", description="counts to n")
async def count(ctx: JobContext) -> dict[str, Any]:
    n = int(ctx.input.get("n", 3))
    for i in range(1, n + 1):
        await ctx.progress(100 * i / n, f"step {i}")
        await ctx.partial({"i": i})
    return {"total": n}


@registry.job("block")
async def block(ctx: JobContext) -> None:
    try:
        gate["started"].set()
        await gate["release"].wait()
    finally:
        finally_ran.append(ctx.id)


@registry.job("boom")
async def boom(ctx: JobContext) -> None:
    raise RuntimeError("kaput")


@registry.job("slow", timeout=0.05)
async def slow(ctx: JobContext) -> None:
    await asyncio.Event().wait()


@registry.job("bad-progress")
async def bad_progress(ctx: JobContext) -> None:
    await ctx.progress(150)


@registry.job("bad-result")
async def bad_result(ctx: JobContext) -> object:
    return object()


@pytest.fixture(autouse=True)
def _reset() -> None:
    gate["started"] = asyncio.Event()
    gate["release"] = asyncio.Event()
    finally_ran.clear()


@pytest.fixture
async def service() -> AsyncIterator[JobService]:
    log = MemoryEventLog()
    store = MemoryJobStore()
    runner = JobRunner(registry, store, log, cancel_poll=0.02)
    async with LocalJobPool(runner, concurrency=1, max_queued=2) as pool:
        yield JobService(registry, store, log, pool)
    await log.aclose()


async def test_progress_and_result_stream_through_the_log(service: JobService) -> None:
    rec = await service.submit("count", {"n": 4})
    assert rec.state is JobState.QUEUED
    events = await events_of(service, rec.id, timeout=5)
    kinds = [e.event for e in events]
    assert kinds[:2] == ["state", "state"]
    assert kinds.count("progress") == 4 and kinds.count("partial") == 4
    assert kinds[-1] == "complete"
    assert [json.loads(e.data)["percent"] for e in events if e.event == "progress"] == [
        25.0,
        50.0,
        75.0,
        100.0,
    ]
    assert json.loads(events[-1].data) == {"result": {"total": 4}}
    done = await service.get(rec.id)
    assert done.state is JobState.SUCCEEDED and done.result == {"total": 4}
    assert done.attempt == 1 and done.progress == 100.0 and done.finished is not None
    info = await service.log.info(rec.stream)
    assert info is not None and info.state is StreamState.CLOSED


async def test_unknown_type_is_refused_before_anything_is_stored(service: JobService) -> None:
    with pytest.raises(UnknownJobType, match="count"):
        await service.submit("nope")


@pytest.mark.parametrize(
    ("job", "kind"),
    [
        ("boom", "RuntimeError"),
        ("slow", "timeout"),
        ("bad-progress", "ValueError"),
        ("bad-result", "invalid_result"),
    ],
)
async def test_failures_end_with_an_error_event(service: JobService, job: str, kind: str) -> None:
    rec = await service.submit(job)
    events = await events_of(service, rec.id, timeout=5)
    assert events[-1].event == "error"
    assert json.loads(events[-1].data)["type"] == kind
    done = await service.get(rec.id)
    assert done.state is JobState.FAILED and done.error is not None and done.error["type"] == kind


async def test_cancel_running_job_runs_its_finally(service: JobService) -> None:
    rec = await service.submit("block")
    async with asyncio.timeout(5):
        await gate["started"].wait()
    await service.cancel(rec.id)
    events = await events_of(service, rec.id, timeout=5)
    assert json.loads(events[-1].data)["state"] == "cancelled"
    assert finally_ran == [rec.id]
    assert (await service.get(rec.id)).state is JobState.CANCELLED
    info = await service.log.info(rec.stream)
    assert info is not None and info.state is StreamState.CANCELLED


async def test_cancel_queued_job_never_runs_it(service: JobService) -> None:
    first = await service.submit("block")
    async with asyncio.timeout(5):
        await gate["started"].wait()
    queued = await service.submit("count")
    cancelled = await service.cancel(queued.id)
    assert cancelled.state is JobState.CANCELLED
    gate["release"].set()
    await events_of(service, first.id)
    events = await events_of(service, queued.id)
    assert [e.event for e in events] == ["state", "state"]
    assert (await service.get(queued.id)).attempt == 0


async def test_cancel_finished_job_changes_nothing(service: JobService) -> None:
    rec = await service.submit("count", {"n": 1})
    await events_of(service, rec.id, timeout=5)
    assert (await service.cancel(rec.id)).state is JobState.SUCCEEDED


async def test_full_queue_refuses_and_marks_the_job_failed(service: JobService) -> None:
    await service.submit("block")
    async with asyncio.timeout(5):
        await gate["started"].wait()
    await service.submit("count")
    await service.submit("count")
    with pytest.raises(JobQueueFull):
        await service.submit("count")
    gate["release"].set()


async def test_pool_shutdown_cancels_running_job_and_marks_it_interrupted() -> None:
    log = MemoryEventLog()
    store = MemoryJobStore()
    runner = JobRunner(registry, store, log, cancel_poll=0.02)
    async with LocalJobPool(runner, concurrency=1) as pool:
        service = JobService(registry, store, log, pool)
        rec = await service.submit("block")
        async with asyncio.timeout(5):
            await gate["started"].wait()
    assert finally_ran == [rec.id]
    done = await service.get(rec.id)
    assert done.state is JobState.FAILED and done.error == {
        "type": "interrupted",
        "message": "the worker shut down",
    }
    await log.aclose()


def test_registry_refuses_bad_names_and_duplicates() -> None:
    reg = JobRegistry()
    with pytest.raises(ValueError):
        reg.job("Bad Name")
    reg.job("ok")(count)
    with pytest.raises(ValueError):
        reg.job("ok")(count)
    with pytest.raises(ValueError):
        reg.job("t", timeout=0)
