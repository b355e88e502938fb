"""At least once, with the real product: ``mianzhang.server:create_app`` under uvicorn with
``jobs.queue=redis`` and ``python -m mianzhang worker`` processes, all on a real redis-server.

* A worker SIGKILLed mid-job: another worker runs the job again and finishes it; a reader of
  ``GET /v1/jobs/{id}/events`` resumes with ``Last-Event-ID`` and sees every event once.
* SIGTERM: the worker stops taking jobs and leaves the running one to another worker.
* Jobs submitted while no worker runs wait in Redis, across a restart of the server.
* A server running jobs itself (``serve_locally``) SIGKILLed mid-job: the next server run
  against the same Redis finishes it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mianzhang._sse import ServerSentEvent
from mianzhang.client import connect
from mianzhang.log import parse_id
from tests._support.procs import ARTIFACTS, ROOT, _env, stop_process, uvicorn_process
from tests._support.wait import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

APP = "mianzhang.server:create_app"
# the demo model at ~0.35 s per LLM call: a job of 8 chunks + 1 combining call takes ~3 s
DEMO = {"demo": {"provider": "demo", "ttft": 0.05, "token_delay": 0.04, "tokens": 8}}
TEXT = "\n\n".join(f"Part {i} of the report has a few words. " * 4 for i in range(8))
SUMMARIZE = {"type": "summarize", "input": {"text": TEXT, "chunk_chars": 200}}


def settings_env(redis_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "MIANZHANG_LOG_BACKEND": "redis",
        "MIANZHANG_REDIS_URL": redis_url,
        "MIANZHANG_JOBS__QUEUE": "redis",
        "MIANZHANG_JOBS__SERVE_LOCALLY": "false",
        "MIANZHANG_JOBS__VISIBILITY_TIMEOUT": "1",
        "MIANZHANG_JOBS__CANCEL_POLL": "0.1",
        "MIANZHANG_LLM__MODELS": json.dumps(DEMO),
        "MIANZHANG_FILES__DIRECTORY": str(tmp_path / "files"),
        "MIANZHANG_WEB": "false",
    }
    env.update(extra)
    return env


class Workers:
    """``python -m mianzhang worker --name NAME`` processes; output in test-artifacts."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, env: dict[str, str]) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"worker-{name}.log"
        with path.open("wb") as out:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "mianzhang", "worker", "--name", name],
                cwd=ROOT,
                env=_env(env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.logs[name] = path

    def stop(self, name: str, sig: int = signal.SIGTERM) -> int:
        return stop_process(self.procs.pop(name), sig)

    def output(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def close(self) -> None:
        for proc in self.procs.values():
            stop_process(proc)


@pytest.fixture
def workers() -> Iterator[Workers]:
    running = Workers()
    try:
        yield running
    finally:
        running.close()


def job_reaches(
    http: httpx.AsyncClient, job_id: str, pred: Callable[[dict[str, Any]], bool]
) -> Callable[[], Awaitable[bool]]:
    """A check for ``eventually``: whether ``GET /v1/jobs/{id}`` satisfies ``pred``."""

    async def check() -> bool:
        return bool(pred((await http.get(f"/v1/jobs/{job_id}")).json()))

    return check


async def job_once(
    http: httpx.AsyncClient, job_id: str, pred: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The job's record once ``pred`` holds for it (polled, bounded to 40 s)."""
    await eventually(job_reaches(http, job_id, pred), timeout=40, interval=0.05)
    body: dict[str, Any] = (await http.get(f"/v1/jobs/{job_id}")).json()
    return body


async def read_until(
    url: str, stop: Any, last_event_id: str | None = None, timeout: float = 40
) -> list[ServerSentEvent]:
    events: list[ServerSentEvent] = []
    async with asyncio.timeout(timeout), connect(url, last_event_id=last_event_id) as stream:
        async for event in stream:
            events.append(event)
            if stop(event):
                break
    return events


def is_final(event: ServerSentEvent) -> bool:
    return event.event in ("complete", "error") or (
        event.event == "state" and json.loads(event.data)["state"] == "cancelled"
    )


def running_attempts(events: list[ServerSentEvent]) -> list[int]:
    states = [json.loads(e.data) for e in events if e.event == "state"]
    return [s["attempt"] for s in states if s["state"] == "running"]


async def test_killed_workers_job_completes_on_another_worker(
    redis_url: str, tmp_path: Path, workers: Workers
) -> None:
    env = settings_env(redis_url, tmp_path)
    with uvicorn_process(APP, factory=True, env=env) as server:
        workers.start("worker-a", env)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            submitted = await http.post("/v1/jobs", json=SUMMARIZE)
            assert submitted.status_code == 202, submitted.text
            job = submitted.json()
            events_url = server.url + job["links"]["events"]
            # reader 1 follows live until worker-a has made progress
            seen = await read_until(
                events_url,
                lambda e: e.event == "progress" and json.loads(e.data)["percent"] > 0,
            )
            running = (await http.get(job["links"]["self"])).json()
            assert running["state"] == "running" and running["worker"] == "worker-a"
            assert workers.stop("worker-a", signal.SIGKILL) == -signal.SIGKILL
            workers.start("worker-b", env)
            # reader 2 resumes after reader 1's last event, to the end
            rest = await read_until(events_url, is_final, last_event_id=seen[-1].id)
            done = await job_once(http, job["id"], lambda j: j["state"] != "running")
            replay = await read_until(events_url, is_final)
    assert done["state"] == "succeeded", workers.output("worker-b")
    assert done["worker"] == "worker-b" and done["attempt"] == 2
    events = seen + rest
    assert [e.id for e in events] == [e.id for e in replay]  # nothing lost, nothing twice
    seqs = [parsed[1] for parsed in (parse_id(e.id) for e in events) if parsed]
    assert seqs == list(range(1, len(events) + 1))
    assert running_attempts(events) == [1, 2]
    assert events[-1].event == "complete"
    assert json.loads(events[-1].data)["result"] == done["result"]
    assert done["result"]["chunks"] == 8 and done["result"]["llm_calls"] == 9
    # the second attempt published every chunk's partial result again
    second = events[[e.event for e in events].index("state", len(seen)) :]
    chunk_partials = [
        json.loads(e.data)["data"]["index"]
        for e in second
        if e.event == "partial" and json.loads(e.data)["data"]["stage"] == "chunk"
    ]
    assert chunk_partials == list(range(1, 9))


async def test_sigterm_leaves_the_running_job_to_another_worker(
    redis_url: str, tmp_path: Path, workers: Workers
) -> None:
    env = settings_env(redis_url, tmp_path)
    with uvicorn_process(APP, factory=True, env=env) as server:
        workers.start("worker-c", env)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            job = (await http.post("/v1/jobs", json=SUMMARIZE)).json()
            await job_once(http, job["id"], lambda j: (j["progress"] or 0) > 0)
            assert workers.stop("worker-c", signal.SIGTERM) == 0, workers.output("worker-c")
            left = (await http.get(job["links"]["self"])).json()
            assert left["state"] == "running" and left["attempt"] == 1  # not failed: requeued
            workers.start("worker-d", env)
            done = await job_once(http, job["id"], lambda j: j["state"] != "running")
    assert done["state"] == "succeeded" and done["worker"] == "worker-d"
    assert done["attempt"] == 2


async def test_jobs_queued_without_workers_survive_a_server_restart(
    redis_url: str, tmp_path: Path, workers: Workers
) -> None:
    env = settings_env(redis_url, tmp_path)
    small = {"type": "summarize", "input": {"text": "A short note."}}
    with uvicorn_process(APP, factory=True, env=env) as first:
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
            ids = [(await http.post("/v1/jobs", json=small)).json()["id"] for _ in range(3)]
    # the first server is gone; a new one, then a worker
    with uvicorn_process(APP, factory=True, env=env) as second:
        async with httpx.AsyncClient(base_url=second.url, timeout=10) as http:
            queued = [(await http.get(f"/v1/jobs/{i}")).json()["state"] for i in ids]
            assert queued == ["queued"] * 3
            workers.start("late-worker", env)
            for job_id in ids:
                done = await job_once(
                    http, job_id, lambda j: j["state"] != "queued" and j["state"] != "running"
                )
                assert done["state"] == "succeeded" and done["worker"] == "late-worker"
            listed = (await http.get("/v1/jobs")).json()["jobs"]
            assert [j["id"] for j in listed] == ids[::-1]


async def test_a_server_killed_while_running_a_job_itself_is_relieved_by_the_next(
    redis_url: str, tmp_path: Path
) -> None:
    env = settings_env(redis_url, tmp_path, MIANZHANG_JOBS__SERVE_LOCALLY="true")
    with uvicorn_process(APP, factory=True, env=env) as first:
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
            job = (await http.post("/v1/jobs", json=SUMMARIZE)).json()
            before = await job_once(http, job["id"], lambda j: (j["progress"] or 0) > 0)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
    with uvicorn_process(APP, factory=True, env=env) as second:
        async with httpx.AsyncClient(base_url=second.url, timeout=10) as http:
            done = await job_once(http, job["id"], lambda j: j["state"] != "running")
            events = await read_until(second.url + job["links"]["events"], is_final)
    assert done["state"] == "succeeded" and done["attempt"] == 2
    assert done["worker"] != before["worker"]
    assert running_attempts(events) == [1, 2] and events[-1].event == "complete"
