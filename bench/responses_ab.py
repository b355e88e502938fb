"""In-process A/B of the response engine: the same events through ``EventSourceResponse`` of two
trees of mianzhang, in one process, alternating, against a null ``send``.

    python bench/responses_ab.py                      # old = git merge-base HEAD main
    python bench/responses_ab.py --old <commit> --events 200000 --rounds 7

The old tree is ``git archive``d into a temporary directory and imported under another
package name (``mianzhang_old``: the package uses relative imports only), so both run in the
same interpreter, on the same event loop, interleaved round by round. Each round streams
``--events`` items per shape with mianzhang's defaults; medians (with the min-max range over
rounds) are printed and written to ``bench/results/responses_ab.json``; the best round (least
disturbed by other load) is the figure to compare, as ``timeit`` takes the minimum. Rates
are per second of CPU time of this process (``time.process_time``), so other load on the
machine stretches both trees' wall time without skewing the comparison (``--old HEAD`` runs an
A/A: the noise floor). Bounded: ``rounds * 3 * 2`` streams, no sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from _common import ROOT, git, merge_base

RESULTS = ROOT / "bench" / "results" / "responses_ab.json"


def load_tree(path: Path, name: str) -> ModuleType:
    """Import the package at ``path`` (a ``mianzhang`` directory) as ``name``."""
    spec = importlib.util.spec_from_file_location(
        name, path / "__init__.py", submodule_search_locations=[str(path)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def archive(commit: str, into: Path) -> Path:
    """``src/mianzhang`` of ``commit`` extracted under ``into``."""
    tar = into / "old.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", "-o", str(tar), commit, "src/mianzhang"],
        cwd=ROOT,
        check=True,
    )
    with tarfile.open(tar) as archive_file:
        archive_file.extractall(into, filter="data")
    return into / "src" / "mianzhang"


def shapes(package: ModuleType, payload: str) -> dict[str, Callable[[int], AsyncIterator[Any]]]:
    event_class = package.ServerSentEvent

    async def events(n: int) -> AsyncIterator[Any]:
        for _ in range(n):
            yield event_class(payload)

    async def strings(n: int) -> AsyncIterator[Any]:
        for _ in range(n):
            yield payload

    async def dicts(n: int) -> AsyncIterator[Any]:
        for i in range(n):
            yield {"data": payload, "id": i}

    return {"ServerSentEvent": events, "str": strings, "dict": dicts}


async def one_stream(package: ModuleType, content: AsyncIterator[Any]) -> float:
    """CPU seconds to stream ``content`` to its end through a null send (no heartbeat)."""
    never = asyncio.Event()
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    response = package.EventSourceResponse(content)
    started = time.process_time()
    await response(scope, receive, send)
    return time.process_time() - started


async def run(packages: dict[str, ModuleType], events: int, rounds: int) -> dict[str, Any]:
    payload = "x" * 90
    table: dict[str, dict[str, list[float]]] = {}
    order = list(packages.items())
    for round_ in range(rounds):
        # alternate, and swap who goes first each round: drift and warm-up hit both alike
        for label, package in order if round_ % 2 == 0 else order[::-1]:
            for shape, make in shapes(package, payload).items():
                gc.collect()
                seconds = await one_stream(package, make(events))
                table.setdefault(shape, {}).setdefault(label, []).append(events / seconds)
    return {
        shape: {
            label: {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}
            for label, rates in by_label.items()
        }
        for shape, by_label in table.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default=None, help="commit of the old tree (merge-base)")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    old = merge_base(args.old)
    new = git("rev-parse", "HEAD")
    with tempfile.TemporaryDirectory() as tmp:
        packages = {
            "old": load_tree(archive(old, Path(tmp)), "mianzhang_old"),
            "new": load_tree(ROOT / "src" / "mianzhang", "mianzhang_new"),
        }
        medians = asyncio.run(run(packages, args.events, args.rounds))
    result = {"old": old, "new": new, "events": args.events, "rounds": args.rounds}
    result["events_per_second"] = medians
    for shape, rates in medians.items():
        old_rate, new_rate = rates["old"], rates["new"]
        best = (new_rate["max"] / old_rate["max"] - 1) * 100
        median = (new_rate["median"] / old_rate["median"] - 1) * 100
        print(
            f"{shape:16} best: old {old_rate['max']:>10,.0f}/s new {new_rate['max']:>10,.0f}/s"
            f" {best:+.1f}%  |  median: old {old_rate['median']:>10,.0f}/s"
            f" new {new_rate['median']:>10,.0f}/s {median:+.1f}%"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
