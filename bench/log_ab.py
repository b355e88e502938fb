"""In-process A/B of the event log's per-event path: appends, and deliveries to caught-up
followers, on the memory log and on Redis, for two trees of mianzhang in one process.

    python bench/log_ab.py                      # old = git merge-base HEAD main
    python bench/log_ab.py --old <commit> --rounds 7 --backends memory

Why: producer leases (issue 15) must not make ``append`` or ``follow`` slower. The old tree is
``git archive``d into a temporary directory and imported as ``mianzhang_old`` (as in
``responses_ab.py``); both trees run on the same event loop, alternating round by round (who
goes first swaps each round). Redis: one ``redis-server`` started here on a free loopback port
(persistence off), shared by both trees, stream names unique per round. Rates are per second
of CPU time of this process (``time.process_time``: the client side of Redis, which is what
the trees differ in; other load on the machine stretches both alike); the best round is the
figure to compare, medians and ranges are printed too. On a shared machine the noise floor is
wide (run ``--old HEAD`` for an A/A); so for Redis the bench also counts the commands Redis
executed per appended or delivered event (``INFO commandstats``, reset before each case): an
exact measure of the round trips the per-event path costs. Results go to
``bench/results/log_ab.json``. Bounded: ``rounds * backends * 2 trees * 2 cases`` runs of at
most ``--appends`` appends and ``--followers`` x ``--events`` deliveries each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, git, merge_base
from responses_ab import archive, load_tree

RESULTS = ROOT / "bench" / "results" / "log_ab.json"
PAYLOAD = '{"text":"' + "x" * 80 + '"}'


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def make_log(package: ModuleType, backend: str, url: str | None) -> Any:
    log = importlib.import_module(f"{package.__name__}.log")
    if backend == "memory":
        return log.MemoryEventLog(max_events=None)
    return log.RedisEventLog(url, prefix=f"ab-{package.__name__}:", max_events=None)


async def appends(log: Any, stream: str, n: int) -> float:
    """Appends per CPU second, nobody following."""
    await log.create(stream)
    started = time.process_time()
    for _ in range(n):
        await log.append(stream, PAYLOAD, event="gen.token")
    seconds = time.process_time() - started
    await log.close(stream)
    return n / seconds


async def deliveries(log: Any, stream: str, followers: int, n: int) -> float:
    """Events delivered per CPU second to ``followers`` caught-up followers of one stream."""
    await log.create(stream)
    ready = asyncio.Event()
    joined = 0

    async def follow() -> int:
        nonlocal joined
        iterator = log.follow(stream)
        try:
            await anext(iterator)  # caught up (and attached) from here on
            got = 1
            joined += 1
            if joined == followers:
                ready.set()
            async for _ in iterator:
                got += 1
        finally:
            await iterator.aclose()
        return got

    await log.append(stream, PAYLOAD, event="gen.token")  # so each follower reads one first
    tasks = [asyncio.create_task(follow()) for _ in range(followers)]
    await ready.wait()
    started = time.process_time()
    for _ in range(n - 1):
        await log.append(stream, PAYLOAD, event="gen.token")
    await log.close(stream)
    counts = await asyncio.gather(*tasks)
    seconds = time.process_time() - started
    assert counts == [n] * followers, counts
    return followers * (n - 1) / seconds


class Commands:
    """Commands Redis executed since the last :meth:`reset` (``INFO commandstats``)."""

    def __init__(self, url: str | None) -> None:
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(url) if url else None

    async def reset(self) -> None:
        if self.client is not None:
            await self.client.config_resetstat()

    async def count(self) -> int:
        if self.client is None:
            return 0
        stats = await self.client.info("commandstats")
        skip = ("cmdstat_info", "cmdstat_config|resetstat", "cmdstat_config")
        return sum(v["calls"] for k, v in stats.items() if k not in skip)


class Table:
    """Rates per case and tree, and Redis commands per event."""

    def __init__(self, url: str | None) -> None:
        self.rates: dict[str, dict[str, list[float]]] = {}
        self.commands: dict[str, dict[str, float]] = {}
        self.counter = Commands(url)

    async def measure(self, name: str, label: str, work: Any, events: int) -> None:
        gc.collect()
        await self.counter.reset()
        rate = await work
        self.rates.setdefault(name, {}).setdefault(label, []).append(rate)
        if name.startswith("redis"):
            self.commands.setdefault(name, {})[label] = await self.counter.count() / events

    def summary(self) -> dict[str, Any]:
        rates = {
            case: {
                label: {"best": max(r), "median": statistics.median(r), "min": min(r)}
                for label, r in by_label.items()
            }
            for case, by_label in self.rates.items()
        }
        return {"rates": rates, "redis_commands_per_event": self.commands}


async def run(
    packages: dict[str, ModuleType], backends: list[str], url: str | None, args: Any
) -> dict[str, Any]:
    table = Table(url)
    order = list(packages.items())
    for round_ in range(args.rounds):
        for label, package in order if round_ % 2 == 0 else order[::-1]:
            for backend in backends:
                log = make_log(package, backend, url)
                scale = 1 if backend == "memory" else 10  # Redis: a round trip per append
                n, events = args.appends // scale, args.events // scale
                try:
                    work = appends(log, f"a{round_}", n)
                    await table.measure(f"{backend} append", label, work, n)
                    work = deliveries(log, f"f{round_}", args.followers, events)
                    await table.measure(f"{backend} deliver", label, work, events)
                finally:
                    await log.aclose()
    if table.counter.client is not None:
        await table.counter.client.aclose()
    return table.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default=None, help="commit of the old tree (merge-base)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--appends", type=int, default=50_000, help="memory; Redis: a tenth")
    parser.add_argument("--followers", type=int, default=100)
    parser.add_argument("--events", type=int, default=5_000, help="memory; Redis: a tenth")
    parser.add_argument("--backends", nargs="+", default=["memory", "redis"])
    args = parser.parse_args()
    old = merge_base(args.old)
    new = git("rev-parse", "HEAD")
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        url = stack.enter_context(redis_server()) if "redis" in args.backends else None
        packages = {
            "old": load_tree(archive(old, Path(tmp)), "mianzhang_old"),
            "new": load_tree(ROOT / "src" / "mianzhang", "mianzhang_new"),
        }
        measured = asyncio.run(run(packages, args.backends, url, args))
    rates, commands = measured["rates"], measured["redis_commands_per_event"]
    result = {"old": old, "new": new, "args": vars(args), "per_cpu_second": rates}
    result["redis_commands_per_event"] = commands
    for case, by_label in rates.items():
        o, n = by_label["old"], by_label["new"]
        print(
            f"{case:16} best: old {o['best']:>11,.0f}/s new {n['best']:>11,.0f}/s"
            f" {(n['best'] / o['best'] - 1) * 100:+.1f}%  |  median: old {o['median']:>11,.0f}/s"
            f" new {n['median']:>11,.0f}/s {(n['median'] / o['median'] - 1) * 100:+.1f}%"
        )
    for case, by_label in commands.items():
        old_n, new_n = by_label["old"], by_label["new"]
        print(f"{case:16} Redis commands per event: old {old_n:.3f} new {new_n:.3f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
