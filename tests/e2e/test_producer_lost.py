"""No reader waits forever on a dead producer (issue 15, "Producer liveness"), with the real
product: two ``mianzhang serve`` processes sharing a real Redis (one server, and a 6-node
Redis Cluster), SIGKILL of the instance running the producer.

* A slow generation started on A, readers on B in two surfaces (chat, responses): A is
  SIGKILLed mid-generation; within the lease ttl + 1 s each reader on B receives its surface's
  error (type ``producer_lost``) and its end; ``/info`` says ``failed``; A restarted does not
  resurrect the stream (no new event, still failed after more than a ttl); nothing is emitted
  twice (ids strictly increasing, exactly one terminal event).
* A job run by A's embedded worker, followed on B: A SIGKILLed mid-job; within the bound the
  reader gets ``state: requeued`` and the stream stays ``open`` (the queue re-delivers jobs);
  A restarted runs attempt 2 on the same stream to ``complete``, every event once.
* A slow plain upload (``PUT /v1/files``) to A, its progress stream ``upload:{id}`` followed
  on B: A SIGKILLed mid-body; within the bound the reader gets the ``error`` event of type
  ``producer_lost`` and the stream ends; ``/info`` says ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mianzhang import SSEDecoder
from mianzhang._sse import ServerSentEvent
from mianzhang.log import parse_id
from tests._support.procs import ARTIFACTS, ServerProcess, free_port, serve_process
from tests._support.wait import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

TTL = 2.0  # MIANZHANG_PRODUCER_LEASE_TTL of the test servers
BOUND = TTL + 1.0  # the documented bound (docs/deployment.md)
SLOW = {"provider": "demo", "ttft": 0.05, "token_delay": 0.05, "tokens": 400}  # ~20 s
JOB_MODEL = {"provider": "demo", "ttft": 0.05, "token_delay": 0.04, "tokens": 8}
TEXT = "\n\n".join(f"Part {i} of the report has a few words. " * 4 for i in range(8))
SUMMARIZE = {"type": "summarize", "input": {"text": TEXT, "chunk_chars": 200, "model": "demo"}}


def report(case: str, waited: float) -> None:
    """Note how long a reader waited after the SIGKILL (test-artifacts/producer-lost.jsonl:
    measured, not asserted beyond the documented bound)."""
    ARTIFACTS.mkdir(exist_ok=True)
    line = json.dumps({"case": case, "ttl": TTL, "waited_after_kill": round(waited, 3)})
    with (ARTIFACTS / "producer-lost.jsonl").open("a") as out:
        out.write(line + "\n")


def server_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "MIANZHANG_LOG_BACKEND": "redis",
        "MIANZHANG_REDIS_URL": redis_url,
        "MIANZHANG_PRODUCER_LEASE_TTL": str(TTL),
        "MIANZHANG_LLM__MODELS": json.dumps({"slow": SLOW, "demo": JOB_MODEL}),
        "MIANZHANG_LLM__DEFAULT_MODEL": "slow",
        "MIANZHANG_AUTH__ANONYMOUS": "true",
        "MIANZHANG_FILES__ENABLED": "false",
        "MIANZHANG_WEB": "false",
        **extra,
    }


@pytest.fixture(params=["redis", "cluster"])
async def deployment(request: pytest.FixtureRequest) -> str:
    """The URL of one Redis server or of the session's Redis Cluster, flushed."""
    from mianzhang.log.redis._connect import close, connect

    name = "redis_server" if request.param == "redis" else "redis_cluster_server"
    url = str(request.getfixturevalue(name).url)
    client = connect(url)
    try:
        await client.flushall()
    finally:
        await close(client)
    return url


class Reader:
    """Follows ``url`` in a task, noting each event and when it came."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[tuple[float, ServerSentEvent]] = []
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Reader:
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        decoder = SSEDecoder()
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(10, read=60)) as http,
            http.stream("GET", self.url) as response,
        ):
            assert response.status_code == 200, await response.aread()
            async for raw in response.aiter_raw():
                for event in decoder.decode(raw):
                    self.events.append((time.monotonic(), event))

    async def count(self, n: int) -> None:
        await eventually(lambda: len(self.events) >= n, timeout=30, message=f"not {n} events")

    async def done(self) -> list[ServerSentEvent]:
        assert self.task is not None
        async with asyncio.timeout(30):
            await self.task
        return [event for _, event in self.events]

    def last_at(self) -> float:
        return self.events[-1][0]


class Instance:
    """One ``mianzhang serve`` on a fixed port, started, killed and started again."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = free_port()
        self._stack = contextlib.ExitStack()

    def start(self) -> ServerProcess:
        self.server = self._stack.enter_context(serve_process(env=self.env, port=self.port))
        return self.server

    @property
    def url(self) -> str:
        return self.server.url

    def kill(self) -> float:
        """SIGKILL; when it happened (monotonic)."""
        self.server.proc.send_signal(signal.SIGKILL)
        self.server.proc.wait(10)
        return time.monotonic()

    def restart(self) -> None:
        self._stack.close()
        self.start()

    def stop(self) -> None:
        self._stack.close()


@pytest.fixture
def instances() -> Iterator[list[Instance]]:
    made: list[Instance] = []
    try:
        yield made
    finally:
        for instance in made:
            instance.stop()


def run(made: list[Instance], env: dict[str, str]) -> Instance:
    instance = Instance(env)
    made.append(instance)
    instance.start()
    return instance


def seqs(events: list[ServerSentEvent]) -> list[tuple[int, int]]:
    """Each id as ``(seq, index in its group)``: strictly increasing when nothing repeats."""
    out = []
    for event in events:
        if not event.id:
            continue
        head, _, index = event.id.partition(".")
        parsed = parse_id(head)
        assert parsed is not None, event.id
        out.append((parsed[1], int(index) if index else 1 << 30))
    return out


async def start_generation(a: ServerProcess) -> str:
    """A background chat completion on A (runs to its end whoever reads); its stream id."""
    body = {"model": "slow", "stream": True, "background": True, "messages": [
        {"role": "user", "content": "a long answer please"}]}  # fmt: skip
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("POST", f"{a.url}/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        return response.headers["x-stream-id"]


async def test_a_generation_whose_instance_is_killed_ends_for_its_readers(
    deployment: str, instances: list[Instance]
) -> None:
    env = server_env(deployment)
    a, b = run(instances, env), run(instances, env)
    stream = await start_generation(a.server)
    chat = Reader(f"{b.url}/v1/streams/{stream}").start()
    responses = Reader(f"{b.url}/v1/streams/{stream}?format=responses").start()
    await chat.count(10)
    await responses.count(10)
    killed_at = a.kill()
    got_chat, got_responses = await chat.done(), await responses.done()
    waited = max(chat.last_at(), responses.last_at()) - killed_at
    # the chat surface: an error chunk of type producer_lost, then [DONE]
    assert got_chat[-1].data == "[DONE]"
    error = orjson.loads(got_chat[-2].data)["error"]
    assert (error["type"], error["code"]) == ("producer_lost", "producer_lost")
    assert sum('"error"' in e.data for e in got_chat) == 1
    assert got_responses[-1].event == "response.failed"
    failed = orjson.loads(got_responses[-1].data)["response"]
    assert failed["error"]["code"] == "producer_lost"
    assert sum(e.event == "response.failed" for e in got_responses) == 1
    for events in (got_chat, got_responses):
        ids = seqs(events)
        assert ids == sorted(set(ids)), "an event was emitted twice"
    assert waited <= BOUND, f"readers waited {waited:.2f}s after the kill"
    async with httpx.AsyncClient(timeout=10) as http:
        info = (await http.get(f"{b.url}/v1/streams/{stream}/info")).json()
        assert info["state"] == "failed"
        a.restart()  # same port, same Redis: it must not resurrect the stream
        await asyncio.sleep(TTL + 0.5)  # longer than a lease: nothing comes back to life
        later = (await http.get(f"{a.url}/v1/streams/{stream}/info")).json()
        assert later["state"] == "failed" and later["last_id"] == info["last_id"]
    replay = await Reader(f"{a.url}/v1/streams/{stream}").start().done()
    assert [(e.id, e.data) for e in replay] == [(e.id, e.data) for e in got_chat]
    report(f"generation on {deployment.partition(':')[0]}", waited)


async def job_state_events(events: list[ServerSentEvent]) -> list[tuple[str, int]]:
    states = [json.loads(e.data) for e in events if e.event == "state"]
    return [(s["state"], s["attempt"]) for s in states if "attempt" in s]


async def test_a_job_whose_worker_instance_is_killed_is_requeued_and_continues(
    redis_url: str, instances: list[Instance]
) -> None:
    common = {"MIANZHANG_JOBS__QUEUE": "redis", "MIANZHANG_JOBS__VISIBILITY_TIMEOUT": "1"}
    a = run(instances, server_env(redis_url, **common))  # runs jobs (serve_locally)
    b = run(instances, server_env(redis_url, **common, MIANZHANG_JOBS__SERVE_LOCALLY="false"))
    async with httpx.AsyncClient(base_url=b.url, timeout=10) as http:
        submitted = await http.post("/v1/jobs", json=SUMMARIZE)
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()
        reader = Reader(b.url + job["links"]["events"]).start()
        await _until(reader, lambda e: e.event == "progress")
        killed_at = a.kill()
        seen = await _until(reader, lambda e: '"requeued"' in e.data)
        waited = reader.last_at() - killed_at
        info = (await http.get(f"/v1/streams/job:{job['id']}/info")).json()
        assert info["state"] == "open"  # the job will be resumed: the stream goes on
        assert waited <= BOUND, f"the reader waited {waited:.2f}s after the kill"
        a.restart()  # a worker again: the queue re-delivers the job to it
        events = await reader.done()
        done = (await http.get(f"/v1/jobs/{job['id']}")).json()
    assert done["state"] == "succeeded" and done["attempt"] == 2
    assert await job_state_events(events) == [
        ("queued", 0),
        ("running", 1),
        ("requeued", 1),
        ("running", 2),
    ]
    assert events[-1].event == "complete"
    numbers = [seq for seq, _ in seqs(events)]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # each once
    assert len(seen) < len(events)
    report("job on redis", waited)


async def _until(reader: Reader, pred: Any) -> list[ServerSentEvent]:
    await eventually(lambda: any(pred(e) for _, e in reader.events), timeout=40)
    return [e for _, e in reader.events]


CHUNK = 20_000  # bytes per chunk of the slow upload
CHUNKS = 400  # at 0.05 s a chunk: ~20 s, far longer than the test needs


async def slow_body() -> AsyncIterator[bytes]:
    """The upload's body, paced like a slow client (the pace is the data, not a wait)."""
    for _ in range(CHUNKS):
        yield b"x" * CHUNK
        await asyncio.sleep(0.05)


async def upload_streams(redis_url: str) -> list[str]:
    """The ``upload:{id}`` streams in Redis (the id of a plain upload is only told to its
    client at the end: a follower elsewhere finds the stream by its key)."""
    from mianzhang.log.redis._connect import close, connect

    client = connect(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match="mz:{upload:*}:meta")]
    finally:
        await close(client)
    return [str(key).split("{", 1)[1].rsplit("}", 1)[0] for key in keys]


async def put_slowly(url: str) -> None:
    """A slow ``PUT /v1/files``; its instance is killed under it (the error is expected)."""
    headers = {"Content-Length": str(CHUNK * CHUNKS)}
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=60) as http:
            await http.put(f"{url}/v1/files/slow.bin", content=slow_body(), headers=headers)


async def test_an_upload_whose_instance_is_killed_ends_for_its_readers(
    redis_url: str, instances: list[Instance], tmp_path: Path
) -> None:
    def env(name: str) -> dict[str, str]:
        files = {"MIANZHANG_FILES__ENABLED": "true", "MIANZHANG_FILES__FSYNC": "false"}
        return server_env(redis_url, **files, MIANZHANG_FILES__DIRECTORY=str(tmp_path / name))

    a, b = run(instances, env("a")), run(instances, env("b"))
    uploading = asyncio.create_task(put_slowly(a.url))
    try:
        found: list[str] = []

        async def one_upload() -> bool:
            found[:] = await upload_streams(redis_url)
            return len(found) == 1

        await eventually(one_upload, timeout=30, message="no upload stream in Redis")
        (stream,) = found
        reader = Reader(f"{b.url}/v1/streams/{stream}").start()
        await reader.count(3)  # the upload is under way, read on B
        killed_at = a.kill()
        events = await reader.done()
        waited = reader.last_at() - killed_at
    finally:
        uploading.cancel()
        await asyncio.gather(uploading, return_exceptions=True)
    assert events[-1].event == "error"
    assert orjson.loads(events[-1].data)["type"] == "producer_lost"
    assert sum(e.event == "error" for e in events) == 1
    progress = [orjson.loads(e.data) for e in events if e.event == "progress"]
    assert progress and {p["state"] for p in progress} == {"receiving"}
    ids = seqs(events)
    assert ids == sorted(set(ids)), "an event was emitted twice"
    assert waited <= BOUND, f"the reader waited {waited:.2f}s after the kill"
    async with httpx.AsyncClient(timeout=10) as http:
        info = (await http.get(f"{b.url}/v1/streams/{stream}/info")).json()
    assert info["state"] == "failed"
    report("plain upload on redis", waited)
