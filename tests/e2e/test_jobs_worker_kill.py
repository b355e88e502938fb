"""At least once, with real processes: a worker SIGKILLed mid-job; another worker re-runs the
job to completion. Also: jobs submitted while no worker runs are not lost."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from mianzhang.jobs import JobRegistry, JobService, JobState, RedisJobQueue, RedisJobStore
from mianzhang.log import LogEvent, RedisEventLog
from tests._support.procs import ROOT, _env, stop_process

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

# Only the type name matters on the submitting side; the workers own the function.
submit_registry = JobRegistry()
submit_registry.job("sleepy")(lambda ctx: asyncio.sleep(0))  # type: ignore[arg-type,return-value]


@pytest.fixture
def workers(redis_url: str) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    procs: dict[str, subprocess.Popen[bytes]] = {}
    yield procs
    for proc in procs.values():
        stop_process(proc)


def start_worker(procs: dict[str, subprocess.Popen[bytes]], url: str, name: str) -> None:
    procs[name] = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.apps.job_worker", url, "1.0", name],
        cwd=ROOT,
        env=_env(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
async def service(redis_url: str) -> AsyncIterator[JobService]:
    client = aioredis.Redis.from_url(redis_url)
    log = RedisEventLog(redis_url)
    yield JobService(submit_registry, RedisJobStore(client), log, RedisJobQueue(client))
    await log.aclose()
    await client.aclose()


async def wait_for(service: JobService, job_id: str, pred: object, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not pred(await service.get(job_id)):  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_killed_workers_job_completes_on_another_worker(
    service: JobService, workers: dict[str, subprocess.Popen[bytes]], redis_url: str
) -> None:
    start_worker(workers, redis_url, "worker-a")
    rec = await service.submit("sleepy", {"steps": 20, "interval": 0.1})
    await wait_for(service, rec.id, lambda r: r.state is JobState.RUNNING and (r.progress or 0) > 0)
    assert (await service.get(rec.id)).worker == "worker-a"
    workers["worker-a"].send_signal(signal.SIGKILL)
    workers["worker-a"].wait(5)
    start_worker(workers, redis_url, "worker-b")
    await wait_for(service, rec.id, lambda r: r.state.terminal)
    done = await service.get(rec.id)
    assert done.state is JobState.SUCCEEDED, done
    assert done.worker == "worker-b" and done.attempt == 2
    assert done.result == {"steps": 20, "attempt": 2}
    _, events = await service.log.read(rec.stream, limit=10_000)
    running = [json.loads(e.data) for e in events if isinstance(e, LogEvent) and e.event == "state"]
    assert [s["attempt"] for s in running if s["state"] == "running"] == [1, 2]
    assert events[-1].event == "complete"


async def test_jobs_queued_without_workers_run_when_one_starts(
    service: JobService, workers: dict[str, subprocess.Popen[bytes]], redis_url: str
) -> None:
    recs = [await service.submit("sleepy", {"steps": 2, "interval": 0.01}) for _ in range(3)]
    start_worker(workers, redis_url, "late-worker")
    for rec in recs:
        await wait_for(service, rec.id, lambda r: r.state.terminal)
        assert (await service.get(rec.id)).state is JobState.SUCCEEDED


async def test_sigterm_leaves_running_job_for_another_worker(
    service: JobService, workers: dict[str, subprocess.Popen[bytes]], redis_url: str
) -> None:
    start_worker(workers, redis_url, "worker-c")
    rec = await service.submit("sleepy", {"steps": 30, "interval": 0.1})
    await wait_for(service, rec.id, lambda r: r.state is JobState.RUNNING and (r.progress or 0) > 0)
    assert stop_process(workers.pop("worker-c"), signal.SIGTERM) == 0
    assert (await service.get(rec.id)).state is JobState.RUNNING  # not failed: requeued
    start_worker(workers, redis_url, "worker-d")
    await wait_for(service, rec.id, lambda r: r.state.terminal)
    done = await service.get(rec.id)
    assert done.state is JobState.SUCCEEDED and done.worker == "worker-d"
