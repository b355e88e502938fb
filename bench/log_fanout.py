"""Fan-out and resume micro-benchmark of the event log backends (bounded in count and time).

    python bench/log_fanout.py                     # memory and redis, 10,000 followers
    python bench/log_fanout.py --backend memory --followers 2000 --events 20

* fan-out: 1 publisher -> N followers of one stream. Each event carries its publish time
  (``time.monotonic_ns``, system-wide on Linux); every follower records publish-to-receive
  latency for every event. Memory: publisher and followers in one process. Redis: the
  publisher here, the followers in a child process (a real redis-server is started unless
  ``--redis-url`` is given).
* resume: a stream holding R events; one reader follows from the first id (R - 1 missed
  events) until it has all of them; reports the time and events per second.

Only 127.0.0.1 traffic; every wait is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from mianzhang.log import EventLog, LogEvent, MemoryEventLog  # noqa: E402


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    n = len(ordered)

    def at(q: float) -> float:
        return ordered[min(n - 1, int(q * n))] / 1e6

    return {
        "samples": n,
        "p50_ms": round(at(0.50), 2),
        "p99_ms": round(at(0.99), 2),
        "max_ms": round(ordered[-1] / 1e6, 2),
        "mean_ms": round(statistics.fmean(ordered) / 1e6, 2),
    }


async def run_followers(
    log: EventLog, stream: str, n: int, expected: int, limit_s: float, ready: asyncio.Event
) -> list[int]:
    """Start ``n`` followers; return all latencies once each got ``expected`` events."""
    latencies: list[int] = []
    record = latencies.append

    async def follower() -> None:
        got = 0
        iterator = log.follow(stream)
        try:
            async for item in iterator:
                if isinstance(item, LogEvent):
                    record(time.monotonic_ns() - int(item.data))
                    got += 1
                    if got == expected:
                        return
                elif item.reason != "retention":
                    raise AssertionError(item)
        finally:
            await iterator.aclose()

    tasks = [asyncio.ensure_future(follower()) for _ in range(n)]
    try:
        async with asyncio.timeout(limit_s):
            while await log.readers(stream) < n:  # noqa: ASYNC110 - polling a remote count
                await asyncio.sleep(0.05)
        ready.set()
        async with asyncio.timeout(limit_s):
            await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return latencies


async def publish(log: EventLog, stream: str, events: int, interval: float) -> float:
    """Append ``events`` timestamped events ``interval`` seconds apart; return append p50 ms."""
    costs = []
    for _ in range(events):
        start = time.perf_counter()
        await log.append(stream, str(time.monotonic_ns()))
        costs.append(time.perf_counter() - start)
        await asyncio.sleep(interval)
    return round(statistics.median(costs) * 1000, 3)


async def resume(log: EventLog, stream: str, total: int, limit_s: float) -> dict[str, Any]:
    await log.create(stream, max_events=total)
    first = ""
    for i in range(total):
        event_id = await log.append(stream, f"event {i} " + "x" * 40)
        first = first or event_id
    start = time.perf_counter()
    got = 0
    iterator = log.follow(stream, first)
    async with asyncio.timeout(limit_s):
        async for item in iterator:
            assert isinstance(item, LogEvent)
            got += 1
            if got == total - 1:
                break
    await iterator.aclose()
    elapsed = time.perf_counter() - start
    return {"missed": got, "seconds": round(elapsed, 3), "events_per_s": round(got / elapsed)}


async def report(
    log: EventLog, args: argparse.Namespace, append_ms: float, start: float, latencies: list[int]
) -> dict[str, Any]:
    """The fan-out figures (wall time since ``start``, latency percentiles), then the resume
    measurement on the same log."""
    fanout = {
        "followers": args.followers,
        "events": args.events,
        "append_p50_ms": append_ms,
        "wall_s": round(time.perf_counter() - start, 2),
        **percentiles(latencies),
    }
    return {"fanout": fanout, "resume": await resume(log, "resume", args.replay, args.timeout)}


async def bench_memory(args: argparse.Namespace) -> dict[str, Any]:
    async with MemoryEventLog(max_events=max(args.replay, 10_000)) as log:
        await log.create("fan")
        ready = asyncio.Event()
        followers = asyncio.ensure_future(
            run_followers(log, "fan", args.followers, args.events, args.timeout, ready)
        )
        async with asyncio.timeout(args.timeout):
            await ready.wait()
        if args.gc_freeze:
            gc.collect()
            gc.freeze()
        start = time.perf_counter()
        append_ms = await publish(log, "fan", args.events, args.interval)
        latencies = await followers
        return await report(log, args, append_ms, start, latencies)


CHILD = """
import asyncio, gc, json, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/src"]
from bench.log_fanout import run_followers
from mianzhang.log import RedisEventLog

async def main(url, n, expected, limit_s, freeze):
    async with RedisEventLog(url) as log:
        ready = asyncio.Event()
        task = asyncio.ensure_future(run_followers(log, "fan", n, expected, limit_s, ready))
        await ready.wait()
        if freeze:
            gc.collect()
            gc.freeze()
        print("ready", flush=True)
        latencies = await task
        print(json.dumps(latencies), flush=True)

asyncio.run(main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),
                 sys.argv[6] == "1"))
"""


async def bench_redis(args: argparse.Namespace, url: str) -> dict[str, Any]:
    from mianzhang.log import RedisEventLog

    async with RedisEventLog(url, max_events=max(args.replay, 10_000)) as log:
        await log.create("fan")
        cmd = [CHILD, str(ROOT), url, str(args.followers), str(args.events)]
        cmd += [str(args.timeout), "1" if args.gc_freeze else "0"]
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", *cmd, stdout=subprocess.PIPE, cwd=ROOT, limit=2**26
        )
        try:
            assert child.stdout is not None
            async with asyncio.timeout(args.timeout):
                line = await child.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"follower process failed: {line!r}")
            start = time.perf_counter()
            append_ms = await publish(log, "fan", args.events, args.interval)
            async with asyncio.timeout(args.timeout):
                latencies = json.loads(await child.stdout.readline())
        finally:
            if child.returncode is None:
                child.kill()
            await child.wait()
        return await report(log, args, append_ms, start, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=["memory", "redis", "all"], default="all")
    parser.add_argument("--followers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between events")
    parser.add_argument("--replay", type=int, default=10_000, help="events for the resume test")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() once followers are set up (a deployment knob: long-lived objects "
        "leave the collector's scans, which removes full-collection pauses from the tail)",
    )
    args = parser.parse_args()
    if not (1 <= args.followers <= 20_000 and 1 <= args.events <= 1_000):
        parser.error("keep it bounded: 1..20000 followers, 1..1000 events")
    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "gc_freeze": args.gc_freeze,
    }
    if args.backend in ("memory", "all"):
        results["memory"] = asyncio.run(bench_memory(args))
        print(json.dumps({"memory": results["memory"]}), flush=True)
    if args.backend in ("redis", "all"):
        with contextlib.ExitStack() as stack:
            url = args.redis_url
            if url is None:
                from tests._support.procs import redis_process

                url = stack.enter_context(redis_process()).url
            results["redis"] = asyncio.run(bench_redis(args, url))
            print(json.dumps({"redis": results["redis"]}), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
