"""A/B of the response engine's per-event path: the engine of a base commit against this tree's.

The ``_responses``, ``_sse`` and ``_errors`` modules of ``--base`` (default: the merge base
with ``main``) are copied from git into a temporary package, next to a copy of this tree's,
and both serve ``--events`` ``ServerSentEvent`` items through ``EventSourceResponse`` against
a null ``send`` in one process, runs interleaved (A, B, A, B, ...) so drift hits both alike.
This tree's engine runs twice: as any ASGI server calls it (no transport extension) and with a
``mianzhang.transport`` extension whose counts are free (the watchdog's bookkeeping only).

    python bench/cut_ab.py                       # 200,000 events, 7 runs each
    python bench/cut_ab.py --events 50000 --repeat 3

Results: ``bench/results/cut_ab.json`` and a table on stdout: events per CPU second of this
process (median and best run per variant).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from _common import ROOT, merge_base

RESULTS = ROOT / "bench" / "results" / "cut_ab.json"
MODULES = ("src/mianzhang/_responses", "src/mianzhang/_sse", "src/mianzhang/_errors.py")
PAYLOAD = "x" * 92


class FreeTransport:
    """A transport extension whose every answer costs nothing: nothing is unacknowledged."""

    stream_send_buffer = 0

    def set_send_buffer(self, size: int) -> None:
        pass

    def unacknowledged_bytes(self) -> int:
        return 0

    def acknowledged_bytes(self) -> int | None:
        return 0

    def abort(self) -> None:
        pass


def _copy(rev: str | None, package: str, into: Path) -> None:
    """The engine's modules at ``rev`` (None: the working tree) as package ``package``."""
    target = into / package
    target.mkdir()
    (target / "__init__.py").write_text("")
    if rev is None:
        for module in MODULES:
            source = ROOT / module
            if source.is_dir():
                shutil.copytree(source, target / source.name)
            else:
                shutil.copy(source, target / source.name)
        return
    archive = subprocess.run(
        ["git", "archive", rev, *MODULES], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    for module in MODULES:
        source = into / module
        shutil.move(str(source), target / source.name)


async def _one(package: ModuleType, sse: ModuleType, events: int, scope: dict[str, Any]) -> float:
    """CPU seconds of this process (not wall time: the machine may be shared) to serve
    ``events`` events through one response against a null send."""
    event_class = sse.ServerSentEvent
    never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def items() -> Any:
        for _ in range(events):
            yield event_class(PAYLOAD)

    async def receive() -> Any:
        return await never

    async def send(message: Any) -> None:
        pass

    response = package.EventSourceResponse(items(), ping=0)
    started = time.process_time()
    await response(scope, receive, send)
    return time.process_time() - started


def _scope(transport: Any | None) -> dict[str, Any]:
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "headers": []}
    if transport is not None:
        scope["extensions"] = {"mianzhang.transport": {"transport": transport}}
    return scope


async def _runs(variants: dict[str, tuple[ModuleType, ModuleType, Any]], args: Any) -> Any:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for package, sse, transport in variants.values():  # warm-up
        await _one(package, sse, args.events // 10, _scope(transport))
    for _ in range(args.repeat):
        for name, (package, sse, transport) in variants.items():
            times[name].append(await _one(package, sse, args.events, _scope(transport)))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", help="git revision of the A side (default: merge base)")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    base = merge_base(args.base)
    with tempfile.TemporaryDirectory() as tmp:
        _copy(base, "ab_base", Path(tmp))
        _copy(None, "ab_tree", Path(tmp))
        sys.path.insert(0, tmp)
        old = importlib.import_module("ab_base._responses")
        old_sse = importlib.import_module("ab_base._sse")
        new = importlib.import_module("ab_tree._responses")
        new_sse = importlib.import_module("ab_tree._sse")
        variants = {
            f"base {base[:7]}": (old, old_sse, None),
            "this tree": (new, new_sse, None),
            "this tree + transport": (new, new_sse, FreeTransport()),
        }
        times = asyncio.run(_runs(variants, args))
    rates = {name: args.events / statistics.median(runs) for name, runs in times.items()}
    best = {name: args.events / min(runs) for name, runs in times.items()}
    first, first_best = next(iter(rates.values())), next(iter(best.values()))
    print(f"{args.events:,} events x {args.repeat} runs, events per CPU second")
    print(f"  {'':24} {'median':>12}        {'best':>12}")
    for name, rate in rates.items():
        print(
            f"  {name:24} {rate:12,.0f} {rate / first:.3f}x"
            f" {best[name]:12,.0f} {best[name] / first_best:.3f}x"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "base": base,
                "events": args.events,
                "cpu_seconds": times,
                "events_per_cpu_s_median": rates,
                "events_per_cpu_s_best": best,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
