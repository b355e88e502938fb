"""Soak: mixed load against two ``mianzhang serve`` instances sharing one redis-server, with
each instance's RSS, open descriptors and asyncio tasks and Redis ``used_memory`` reported
every minute. "Flat after warm-up" is the bar.

Everything runs on 127.0.0.1 and is started here, on free ports, and stopped in ``finally``:
one ``redis-server`` (no persistence) and two ``python -m mianzhang serve`` (Redis log, Redis
job queue served by both). The load, modest and fixed in rate (the machine may be shared):

* LLM generations on the demo model (``/v1/chat/completions``, streamed), each read for a few
  chunks on one instance, dropped, and resumed on the other with ``Last-Event-ID``;
* channel publish (two channels, ``--publish-rate`` events/s each, alternating instances) and
  subscribers that drop and resume on the other instance after 20-100 events; every
  subscriber checks the sequence it reads (gaps and duplicates are counted: both must be 0);
* file uploads (256 KiB ``PUT``, then ``DELETE``) and job submissions (``summarize`` on the
  demo model), each followed on the other instance through its SSE events.

Retention is shortened (``stream_ttl``, ``keep_finished`` and ``progress_ttl`` 60 s) so a run
reaches its steady state within the warm-up; a process that keeps growing after it leaks.
Samples every ``--sample`` seconds; the verdict fits a line to the samples after the warm-up
(``--warmup``, 2 minutes) and calls a series flat when its fitted growth over that window stays
within a tolerance: RSS 3 MiB or 3 %, descriptors 3 or 5 %, tasks 10 or 10 %, Redis 1 MiB or 5 %
(whichever is larger).

    python bench/soak.py                 # 10 minutes
    python bench/soak.py --minutes 3     # validation run

Results: a table per minute on stdout and ``bench/results/soak-<date>.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

import httpx
import orjson
import psutil
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(ROOT / "bench")]

from tests._support.procs import RedisProcess, free_port, stop_process, wait_for_port  # noqa: E402

from _soak_report import Census, Sample, report_markdown, verdicts  # noqa: E402
from mianzhang import SSEDecoder  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MODELS = {"demo": {"provider": "demo", "ttft": 0.05, "token_delay": 0.01, "tokens": 60}}
TEXT = "The soak test keeps the servers busy. " * 40
UPLOAD = os.urandom(256 * 1024)


@dataclass
class Instance:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    client: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.proc.pid)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}", timeout=30, limits=limits
        )


@dataclass
class Counts:
    """Operations done, by kind, in all and in the current minute; errors by kind."""

    total: dict[str, int] = field(default_factory=dict)
    minute: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    first_errors: list[str] = field(default_factory=list)

    def add(self, kind: str, n: int = 1) -> None:
        self.total[kind] = self.total.get(kind, 0) + n
        self.minute[kind] = self.minute.get(kind, 0) + n

    def error(self, kind: str, exc: BaseException) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.add("errors")
        if len(self.first_errors) < 20:
            self.first_errors.append(f"{kind}: {type(exc).__name__}: {exc}"[:300])


@dataclass
class Soak:
    instances: list[Instance]
    counts: Counts = field(default_factory=Counts)

    def pair(self) -> tuple[Instance, Instance]:
        """Two different instances, in random order: one to start on, one to resume on."""
        first, second = random.sample(self.instances, 2)
        return first, second


# -- processes ---------------------------------------------------------------------------------
def _server_env(redis_url: str, files: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env.update(
        {
            "MIANZHANG_LOG_BACKEND": "redis",
            "MIANZHANG_REDIS_URL": redis_url,
            "MIANZHANG_JOBS__QUEUE": "redis",
            "MIANZHANG_JOBS__KEEP_FINISHED": "60",
            "MIANZHANG_LLM__STREAM_TTL": "60",
            "MIANZHANG_LLM__MODELS": json.dumps(MODELS),
            "MIANZHANG_FILES__DIRECTORY": str(files),
            "MIANZHANG_FILES__FSYNC": "false",
            "MIANZHANG_FILES__PROGRESS_TTL": "60",
            "MIANZHANG_WEB": "false",
        }
    )
    return env


@contextlib.contextmanager
def servers(redis_url: str, workdir: Path) -> Iterator[list[tuple[str, int, Popen[bytes]]]]:
    """Two ``mianzhang serve`` processes (output in ``workdir``), stopped on exit."""
    started: list[tuple[str, int, Popen[bytes]]] = []
    logs = []
    try:
        for name in ("A", "B"):
            port = free_port()
            log = (workdir / f"serve-{name}.log").open("wb")
            logs.append(log)
            env = _server_env(redis_url, workdir / f"files-{name}")
            cmd = [sys.executable, "-m", "mianzhang", "serve", "--port", str(port)]
            proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=log)
            started.append((name, port, proc))
            wait_for_port(port, proc, timeout=30)
        yield started
    finally:
        for _, _, proc in started:
            stop_process(proc)
        for log in logs:
            log.close()


# -- the load ----------------------------------------------------------------------------------
async def forever(soak: Soak, kind: str, op: Callable[[], Awaitable[None]], pause: float) -> None:
    """Run ``op`` again and again (``pause`` seconds apart), counting failures by ``kind``."""
    while True:
        try:
            await op()
        except Exception as exc:
            soak.counts.error(kind, exc)
        await asyncio.sleep(pause * random.uniform(0.5, 1.5))


async def read_sse(
    response: httpx.Response, on_event: Callable[[str | None, str, str | None], bool]
) -> None:
    """Feed each event (type, data, id) to ``on_event`` until it returns True or the body
    ends."""
    decoder = SSEDecoder()
    async for chunk in response.aiter_bytes():
        for event in decoder.decode(chunk):
            if on_event(event.event, event.data, event.id):
                return


async def generation(soak: Soak) -> None:
    """A streamed completion read for a few chunks, dropped, resumed on the other instance."""
    first, second = soak.pair()
    body = {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "soak"}]}
    state: dict[str, str | None] = {"id": None, "done": None}
    cut_after = random.randint(3, 15)
    seen = 0

    def on_event(kind: str | None, data: str, event_id: str | None) -> bool:
        nonlocal seen
        seen += 1
        state["id"] = event_id or state["id"]
        if data == "[DONE]":
            state["done"] = "yes"
        return data == "[DONE]" or seen >= cut_after

    async with first.client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        stream_id = response.headers["x-stream-id"]
        await read_sse(response, on_event)
    soak.counts.add("generations")
    if state["done"]:
        return
    headers = {"Last-Event-ID": state["id"]} if state["id"] else {}
    async with second.client.stream("GET", f"/v1/streams/{stream_id}", headers=headers) as again:
        again.raise_for_status()
        await read_sse(again, lambda kind, data, event_id: data == "[DONE]")
    soak.counts.add("resumes")


async def publisher(soak: Soak, channel: str, rate: float) -> None:
    """Publish ``{"n": 0, 1, 2, ...}`` at ``rate`` events/s, alternating instances."""
    n = 0
    while True:
        instance = soak.instances[n % len(soak.instances)]
        try:
            response = await instance.client.post(
                f"/v1/channels/{channel}/publish", json={"data": {"n": n}}
            )
            response.raise_for_status()
            soak.counts.add("published")
            n += 1
        except Exception as exc:
            soak.counts.error("publish", exc)
        await asyncio.sleep(1 / rate)


@dataclass
class Subscription:
    channel: str
    last_id: str | None = None
    last_n: int | None = None


async def subscription(soak: Soak, sub: Subscription) -> None:
    """Read 20-100 events of ``sub.channel`` from one instance, resuming after the last one
    seen (first time: the live tail); count gaps and duplicates in the sequence."""
    instance = random.choice(soak.instances)
    headers = {"Last-Event-ID": sub.last_id} if sub.last_id else {}
    params = {} if sub.last_id else {"history": "false"}
    take = random.randint(20, 100)
    got = 0

    def on_event(kind: str | None, data: str, event_id: str | None) -> bool:
        nonlocal got
        if kind == "reset":
            soak.counts.add("resets")
            sub.last_n = None
        elif kind == "message":
            n = orjson.loads(data)["n"]
            got += 1
            soak.counts.add("received")
            if sub.last_n is not None and n <= sub.last_n:
                soak.counts.add("duplicates")
                return got >= take
            if sub.last_n is not None and n > sub.last_n + 1:
                soak.counts.add("gaps", n - sub.last_n - 1)
            sub.last_n, sub.last_id = n, event_id
        return got >= take

    url = f"/v1/channels/{sub.channel}/events"
    async with instance.client.stream("GET", url, params=params, headers=headers) as response:
        response.raise_for_status()
        await read_sse(response, on_event)
    soak.counts.add("resubscribes")


async def upload(soak: Soak) -> None:
    instance = random.choice(soak.instances)
    response = await instance.client.put("/v1/files/soak.bin", content=UPLOAD)
    response.raise_for_status()
    removed = await instance.client.delete(response.headers["location"])
    removed.raise_for_status()
    soak.counts.add("uploads")


async def job(soak: Soak) -> None:
    """A ``summarize`` job submitted on one instance, followed to its end on the other."""
    first, second = soak.pair()
    body = {"type": "summarize", "input": {"text": TEXT, "max_tokens": 20, "chunk_chars": 600}}
    response = await first.client.post("/v1/jobs", json=body)
    response.raise_for_status()
    job_id = response.json()["id"]
    outcome: list[str] = []

    def on_event(kind: str | None, data: str, event_id: str | None) -> bool:
        if kind in ("complete", "error"):
            outcome.append(kind)
        return False  # the stream ends after the job's last event

    async with second.client.stream("GET", f"/v1/jobs/{job_id}/events") as events:
        events.raise_for_status()
        await read_sse(events, on_event)
    soak.counts.add("jobs" if outcome == ["complete"] else "jobs_failed")


# -- watching ----------------------------------------------------------------------------------
MiB = 1 << 20


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return float("nan")


async def take_sample(soak: Soak, redis: aioredis.Redis, t: float) -> Sample:
    """Each instance's RSS and descriptors (psutil), its tasks (``/metrics``); Redis memory."""
    values: dict[str, float] = {}
    for instance in soak.instances:
        values[f"{instance.name} RSS MiB"] = instance.ps.memory_info().rss / MiB
        values[f"{instance.name} fds"] = instance.ps.num_fds()
        text = (await instance.client.get("/metrics")).text
        values[f"{instance.name} tasks"] = _metric(text, "mianzhang_asyncio_tasks")
        values[f"{instance.name} streams"] = _metric(text, "mianzhang_streams_active")
    info = await redis.info("memory")
    values["Redis MiB"] = float(info["used_memory"]) / MiB
    return Sample(t, values)


_IDS = re.compile(r"[0-9a-f]{8,}|\d{6,}")


async def redis_census(redis: aioredis.Redis, sampled: int = 50) -> list[Census]:
    """Redis keys by pattern (ids replaced by ``*``): count, estimated memory (the mean of up
    to ``sampled`` keys' ``MEMORY USAGE``), the range of TTLs seen (-1: none)."""
    keys: dict[str, list[bytes]] = {}
    async for key in redis.scan_iter(count=1000):
        keys.setdefault(_IDS.sub("*", key.decode()), []).append(key)
    found = []
    for pattern, members in keys.items():
        sample = members[:sampled]
        sizes = [await redis.memory_usage(key) or 0 for key in sample]
        ttls = [await redis.ttl(key) for key in sample]
        estimate = sum(sizes) / len(sample) * len(members)
        found.append(Census(pattern, len(members), estimate / MiB, min(ttls), max(ttls)))
    return sorted(found, key=lambda c: -c.mib)


def _print_row(minute: str, sample: Sample, counts: dict[str, int]) -> None:
    v = sample.values
    cells = [f"min {minute:>4}"]
    for name in ("A", "B"):
        cells.append(
            f"{name}: {v[f'{name} RSS MiB']:6.1f} MiB {v[f'{name} fds']:4.0f} fds"
            f" {v[f'{name} tasks']:5.0f} tasks"
        )
    cells.append(f"Redis {v['Redis MiB']:6.2f} MiB")
    cells.append(" ".join(f"{k}={n}" for k, n in sorted(counts.items())))
    print(" | ".join(cells), flush=True)


@dataclass
class Watch:
    samples: list[Sample] = field(default_factory=list)
    rows: list[tuple[str, Sample, dict[str, int]]] = field(default_factory=list)
    census: list[Census] = field(default_factory=list)


async def watch(soak: Soak, redis: aioredis.Redis, every: float, into: Watch) -> None:
    """A sample every ``every`` seconds; a row (printed) at each full minute."""
    started = time.monotonic()
    minute = 0
    while True:
        sample = await take_sample(soak, redis, time.monotonic() - started)
        into.samples.append(sample)
        if sample.t >= minute * 60 - every / 2:
            into.rows.append((str(minute), sample, dict(soak.counts.minute)))
            _print_row(str(minute), sample, soak.counts.minute)
            soak.counts.minute.clear()
            minute += 1
        await asyncio.sleep(every - (time.monotonic() - started) % every)


def _load(soak: Soak, group: asyncio.TaskGroup, args: argparse.Namespace) -> None:
    for _ in range(args.llm_workers):
        group.create_task(forever(soak, "generation", lambda: generation(soak), 0.3))
    for index in range(2):
        channel = f"soak-{index}"
        group.create_task(publisher(soak, channel, args.publish_rate))
        for _ in range(args.subscribers):
            sub = Subscription(channel)
            group.create_task(forever(soak, "subscribe", lambda s=sub: subscription(soak, s), 0))
    group.create_task(forever(soak, "upload", lambda: upload(soak), 1.0))
    group.create_task(forever(soak, "job", lambda: job(soak), 3.0))


async def run(
    args: argparse.Namespace, redis_url: str, started: list[tuple[str, int, Popen[bytes]]]
) -> tuple[Watch, Counts]:
    """The load and the watch for ``--minutes``, then every task cancelled."""
    soak = Soak([Instance(name, port, proc) for name, port, proc in started])
    redis = aioredis.from_url(redis_url)
    into = Watch()
    try:
        async with asyncio.timeout(args.minutes * 60 + args.sample / 2):
            async with asyncio.TaskGroup() as group:
                group.create_task(watch(soak, redis, args.sample, into))
                _load(soak, group, args)
    except TimeoutError:
        pass
    finally:
        last = into.samples[-1] if into.samples else None
        if last is not None and last is not into.rows[-1][1]:  # the last partial minute
            label = f"{last.t / 60:.1f}"
            into.rows.append((label, last, dict(soak.counts.minute)))
            _print_row(label, last, soak.counts.minute)
        for instance in soak.instances:
            await instance.client.aclose()
        into.census = await redis_census(redis)
        await redis.aclose()
    return into, soak.counts


def _header(args: argparse.Namespace, elapsed: float) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    load = os.getloadavg()
    return (
        f"# Soak, {time.strftime('%Y-%m-%d %H:%M')} (git `{commit}`)\n\n"
        f"`python bench/soak.py --minutes {args.minutes}`: {elapsed / 60:.1f} min, two"
        f" `mianzhang serve` + redis-server on 127.0.0.1, {os.cpu_count()} CPUs, load average"
        f" at the end {load[0]:.1f}. Load: {args.llm_workers} LLM workers (drop + resume),"
        f" 2 channels x {args.publish_rate:g} events/s with {args.subscribers} resuming"
        f" subscribers each, an upload (256 KiB, then deleted) about every second, a job about"
        f" every 3 s. Samples every {args.sample:g} s; verdict on the samples after"
        f" {args.warmup:g} s."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--llm-workers", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=2, help="per channel")
    parser.add_argument("--publish-rate", type=float, default=10.0, help="events/s per channel")
    parser.add_argument("--out", type=Path, help="default: bench/results/soak-<date>.md")
    args = parser.parse_args()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mianzhang-soak-") as tmp:
        redis_server = RedisProcess()
        redis_server.start()
        try:
            with servers(redis_server.url, Path(tmp)) as started:
                into, counts = asyncio.run(run(args, redis_server.url, started))
        finally:
            redis_server.stop()
    found = verdicts(into.samples, args.warmup)
    names = ["A", "B"]
    text = report_markdown(
        _header(args, time.monotonic() - began),
        into.rows,
        names,
        found,
        counts.total,
        counts.first_errors,
        into.census,
    )
    out = args.out or RESULTS / f"soak-{time.strftime('%Y%m%d-%H%M')}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print("Verdict" + text.split("## Verdict", 1)[1].split("## Totals")[0].rstrip())
    print(f"written: {out}")


if __name__ == "__main__":
    main()
