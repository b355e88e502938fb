"""Tables (markdown) and the chart of ``bench/fanout.py`` results."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import resource
import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

LABELS = {
    "floor": "floor: uvloop transports, no ASGI (client's floor)",
    "raw": "raw ASGI, one pre-encoded write per subscriber",
    "streaming": "StreamingResponse + a queue per subscriber",
    "sse-starlette": "sse-starlette + a queue per subscriber",
    "mz-queue": "mianzhang EventSourceResponse + a queue per subscriber",
    "mz-log": "mianzhang: bare MemoryEventLog stream, log readers",
    "mz-channel": "mianzhang serve: channel route (memory log)",
    "mz-redis2": "mianzhang serve x2 + Redis, subscribers split",
    "mz-stream": "mianzhang serve: GET /v1/streams/{id} (memory log)",
}
SHORT = {
    "floor": "floor",
    "raw": "raw ASGI",
    "streaming": "Streaming\nResponse+queue",
    "sse-starlette": "sse-starlette\n+queue",
    "mz-queue": "mz response\n+queue",
    "mz-log": "mz log\nreaders",
    "mz-channel": "mz channel\nroute",
    "mz-redis2": "mz x2\n+Redis",
    "mz-stream": "mz /v1/streams",
}


def machine(root: Path) -> dict[str, Any]:
    versions = {}
    for dist in ("uvicorn", "uvloop", "httptools", "starlette", "fastapi", "sse-starlette"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    digest = hashlib.sha256()
    src = root / "src" / "mianzhang"
    for path in sorted(src.rglob("*.py")):
        digest.update(path.read_bytes())
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, check=False
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, check=False
    )
    return {
        "git_head": head.stdout.decode().strip(),
        "src_dirty": bool(dirty.stdout.strip()),
        "src_sha256": digest.hexdigest()[:12],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": versions,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
    }


# -- fan-out ----------------------------------------------------------------------------------
def _values(runs: list[dict[str, Any]], *path: str) -> list[float]:
    out = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            out.append(float(value))
    return out


def summary(runs: list[dict[str, Any]], *path: str) -> dict[str, float] | None:
    """Median and spread (min, max) over the repeats of one metric."""
    values = _values([r for r in runs if "error" not in r], *path)
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _cell(found: dict[str, float] | None, digits: int = 1) -> str:
    if found is None:
        return "—"
    median = f"{found['median']:,.{digits}f}"
    if found["min"] == found["max"]:
        return median
    return f"{median} ({found['min']:,.{digits}f}–{found['max']:,.{digits}f})"


def _ratio(runs: dict[str, list[dict[str, Any]]], peer: str, key: str, top: bool = False) -> str:
    path = (key,) if top else ("latency_ms", key)
    mine, raw = summary(runs.get(peer, []), *path), summary(runs.get("raw", []), *path)
    if mine is None or raw is None or not raw["median"]:
        return "—"
    return f"{mine['median'] / raw['median']:.2f}x"


def redis_per_event(run: dict[str, Any]) -> dict[str, float]:
    """Redis commands per published event: the publish window's calls minus the idle
    window's rate over the same time, divided by the events published."""
    window, idle = run.get("redis_window"), run.get("redis_idle")
    if not window:
        return {}
    scale = window["seconds"] / idle["seconds"] if idle else 0.0
    background = idle["calls"] if idle else {}
    # publishes the server answered in the window (an overloaded one answers late)
    answered = sum(v for k, v in run.get("publish_statuses", {}).items() if k.startswith("2"))
    out = {}
    for name in sorted(set(window["calls"]) | set(background)):
        calls = window["calls"].get(name, 0) - background.get(name, 0) * scale
        out[name] = round(calls / max(1, answered or run["messages"]), 2)
    return out


def fanout_tables(results: dict[str, Any]) -> str:
    params = results["params"]
    lines = [
        f"Publish-to-receive latency, {params['messages']} messages of {params['size']} B at "
        f"{params['rate']:g}/s to N subscribers of one stream; every event at every subscriber "
        f"(kernel arrival stamp). Median over {params['repeats']} repeats, (min–max) across "
        'them. "last sub" is the latency of the last subscriber to get an event (p50 over '
        "events): the fan-out's completion. Ratios are of medians, against raw ASGI. "
        '"server run-queue wait": time the server was runnable but waiting for its CPU '
        "(other work on the machine; high values mean the case measured the machine, not the "
        'server). "client delay": user-space read minus kernel arrival (the client\'s own lag, '
        'not in the latency). "server CPU µs per delivery": server CPU time over the publish '
        "window divided by events x subscribers: what one delivery costs, which load on a "
        "shared machine hardly changes (compare these when the run-queue wait is high).",
        "",
    ]
    for n, runs in results["runs"].items():
        loads = [r.get("load_before", [None])[0] for rs in runs.values() for r in rs]
        loads = [x for x in loads if x is not None]
        load = f"{min(loads):.1f}–{max(loads):.1f}" if loads else "?"
        lines += [
            f"**{int(n):,} subscribers** (1-min load average during the cases: {load})",
            "",
            "| peer | p50 ms | p99 ms | max ms | last sub p50 ms | p50 vs raw | p99 vs raw "
            "| server CPU % | server CPU µs per delivery | CPU vs raw | server run-queue wait % "
            "| client delay p99 ms | runs ok |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for peer, peer_runs in runs.items():
            ok = [r for r in peer_runs if "error" not in r and r.get("complete")]
            lines.append(
                f"| {LABELS.get(peer, peer)} | {_cell(summary(peer_runs, 'latency_ms', 'p50'))} "
                f"| {_cell(summary(peer_runs, 'latency_ms', 'p99'))} "
                f"| {_cell(summary(peer_runs, 'latency_ms', 'max'))} "
                f"| {_cell(summary(peer_runs, 'last_subscriber_ms', 'p50'))} "
                f"| {_ratio(runs, peer, 'p50')} | {_ratio(runs, peer, 'p99')} "
                f"| {_cell(summary(peer_runs, 'server_cpu_percent'), 0)} "
                f"| {_cell(summary(peer_runs, 'server_cpu_us_per_delivery'))} "
                f"| {_ratio(runs, peer, 'server_cpu_us_per_delivery', top=True)} "
                f"| {_cell(summary(peer_runs, 'server_runqueue_wait_percent'), 0)} "
                f"| {_cell(summary(peer_runs, 'client_delay_ms', 'p99'))} "
                f"| {len(ok)}/{len(peer_runs)} |"
            )
        errors = [
            f"{peer}: {r['error'].strip().splitlines()[-1][:300]}"
            for peer, rs in runs.items()
            for r in rs
            if "error" in r
        ]
        lines += [""] + [f"* error {e}" for e in errors] + ([""] if errors else [])
    redis_rows = []
    for n, runs in results["runs"].items():
        for i, run in enumerate(runs.get("mz-redis2", [])):
            per_event = redis_per_event(run)
            if per_event:
                shown = {k: v for k, v in per_event.items() if abs(v) >= 0.05}
                total = round(sum(per_event.values()), 2)
                redis_rows.append(f"| {int(n):,} | {i + 1} | {total} | {shown} |")
    if redis_rows:
        lines += [
            "**Redis commands per published event** (two `mianzhang serve` + Redis; publish "
            "window minus an idle window of the same length, per publish answered in the window)",
            "",
            "| subscribers | run | total per event | by command |",
            "|---:|---:|---:|---|",
            *redis_rows,
            "",
        ]
    return "\n".join(lines)


def _bars(ax: Any, runs: dict[str, Any], series: list[tuple[tuple[str, ...], str, str]]) -> None:
    """Grouped bars (median over repeats, error bars min–max) of ``series`` per peer."""
    peers = [p for p in runs if summary(runs[p], *series[0][0])]
    width = 0.8 / len(series)
    for i, (path, label, color) in enumerate(series):
        found = [summary(runs[p], *path) for p in peers]
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(peers))]
        ys = [f["median"] if f else float("nan") for f in found]
        low = [f["median"] - f["min"] if f else 0 for f in found]
        high = [f["max"] - f["median"] if f else 0 for f in found]
        bars = ax.bar(xs, ys, width, yerr=[low, high], capsize=3, color=color, label=label)
        for bar, y in zip(bars, ys, strict=True):
            ax.annotate(
                f"{y:,.0f}" if y >= 10 else f"{y:.1f}",
                (bar.get_x() + bar.get_width() / 2, y),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.set_xticks(range(len(peers)))
    ax.set_xticklabels([SHORT.get(p, p) for p in peers], fontsize=7)
    ax.legend(fontsize=8)


def fanout_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(results["runs"])
    fig, axes = plt.subplots(2, len(sizes), figsize=(6.5 * len(sizes), 10), squeeze=False)
    for column, n in enumerate(sizes):
        runs = results["runs"][n]
        top, bottom = axes[0][column], axes[1][column]
        _bars(
            top,
            runs,
            [
                (("latency_ms", "p50"), "p50", "#4477aa"),
                (("latency_ms", "p99"), "p99", "#ee6677"),
            ],
        )
        top.set_yscale("log")
        top.set_ylabel("publish-to-receive latency, ms (log)")
        top.set_title(f"{int(n):,} subscribers of one stream: latency", fontsize=10)
        _bars(bottom, runs, [(("server_cpu_us_per_delivery",), "server CPU µs", "#228833")])
        bottom.set_ylabel("server CPU µs per delivery (one event to one subscriber)")
        bottom.set_title(
            f"{int(n):,} subscribers: server CPU per delivery (load-robust)", fontsize=10
        )
    params = results["params"]
    fig.suptitle(
        f"Fan-out: {params['messages']} messages of {params['size']} B at {params['rate']:g}/s; "
        f"median of {params['repeats']} repeats, bars span min–max",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- idle and head -----------------------------------------------------------------------------
def _lag_cell(level: dict[str, Any] | None) -> str:
    """``max / p99`` ms of the server's event-loop lag at one level (``*``: the max grew in
    the hold); ``—`` for peers without the metric."""
    lag = (level or {}).get("server_loop_lag")
    if not lag or "error" in lag or lag.get("max_ms") is None:
        return "—"
    grew = "*" if (lag["max_before_ms"] or 0) < lag["max_ms"] else ""
    p99 = "—" if lag.get("p99_ms") is None else f"{lag['p99_ms']:.1f}"
    return f"{lag['max_ms']:.0f}{grew} / {p99}"


def idle_table(results: dict[str, Any]) -> str:
    levels = results["params"]["levels"]
    head = " | ".join(f"KiB/conn @{lv:,}" for lv in levels)
    late = " | ".join(f"ping lateness max ms @{lv:,}" for lv in levels)
    lags = " | ".join(f"loop lag max / p99 ms @{lv:,}" for lv in levels)
    lines = [
        f"Server RSS growth per idle subscriber (heartbeat every {results['params']['ping']:g} s; "
        f"lateness = gap between heartbeats minus the interval, over "
        f"{results['params']['hold']:g} s at each level; a connection that got fewer than "
        "hold // interval heartbeats in the hold is counted in the JSON as "
        "`connections_short_of_heartbeats`). Loop lag (`mianzhang serve` peers, from "
        "`/metrics`): the server's event-loop lag, max since the server started (`*`: it "
        "grew during that level's hold) / p99 over the hold (histogram bucket deltas, "
        "interpolated as `histogram_quantile` does); `server_loop_lag` in the JSON",
        "",
        f"| peer | {head} | {late} | {lags} | load |",
        "|---|" + "---:|" * (3 * len(levels) + 1),
    ]
    for peer, found in results["peers"].items():
        got = found.get("levels", [])
        kib = [
            f"{got[i]['kib_per_connection']:.1f}" if i < len(got) else "—"
            for i in range(len(levels))
        ]
        lat = [
            f"{got[i]['heartbeat_lateness_ms'].get('max', float('nan')):.0f}"
            if i < len(got)
            else "—"
            for i in range(len(levels))
        ]
        lag = [_lag_cell(got[i] if i < len(got) else None) for i in range(len(levels))]
        load = found.get("load_before", ["?"])[0]
        lines.append(
            f"| {LABELS.get(peer, peer)} | {' | '.join(kib)} | {' | '.join(lat)} | "
            f"{' | '.join(lag)} | {load} |"
        )
        if "error" in found:
            lines.append(f"| ↳ error: {found['error'].strip().splitlines()[-1][:200]} |")
    return "\n".join(lines)


def head_table(results: dict[str, Any]) -> str:
    lines = [
        f"Request to response head, {results['params']['samples']} sequential samples per case "
        f"(load {results['machine'].get('load_before', ['?'])[0]})",
        "",
        "| case | head p50 ms | p99 ms | max ms | first event p50 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, found in results["cases"].items():
        if not isinstance(found, dict) or "head_ms" not in found:
            continue
        head, first = found["head_ms"], found["first_event_ms"]
        lines.append(
            f"| {name} | {head['p50']:.2f} | {head['p99']:.2f} | {head['max']:.2f} | "
            f"{first['p50']:.2f} |" if first.get("samples") else
            f"| {name} | {head['p50']:.2f} | {head['p99']:.2f} | {head['max']:.2f} | — |"
        )  # fmt: skip
    return "\n".join(lines)


def write(results: dict[str, Any], out: Path, mode: str) -> None:
    if mode == "fanout":
        text = fanout_tables(results)
        fanout_chart(results, out.with_suffix(".png"))
    elif mode == "idle":
        text = idle_table(results)
    else:
        text = head_table(results)
    machine_info = results.get("machine", {})
    footer = (
        f"\n\n`{results.get('command', '')}`; git {machine_info.get('git_head')} "
        f"(src sha256 {machine_info.get('src_sha256')}, dirty: {machine_info.get('src_dirty')}); "
        f"load average at start {machine_info.get('load_average_at_start')}, "
        f"at end {machine_info.get('load_average_at_end', '?')}; "
        f"{results.get('wall_seconds', '?')} s.\n"
    )
    out.with_suffix(".md").write_text(text + footer)
    print(text + footer)
