"""Fan-out, idle connections and quiet-stream heads: mianzhang vs raw ASGI and queue peers.

    python bench/fanout.py                               # fan-out at 1,000 and 10,000 (~25 min)
    python bench/fanout.py --subscribers 1000 --repeats 1  # one size, one repeat (~2 min)
    python bench/fanout.py --mode idle                   # RSS per idle connection (~12 min)
    python bench/fanout.py --mode head                   # response head of quiet streams (~1 min)
    python bench/fanout.py --replot                      # tables and chart from the JSON

**Fan-out** (``--mode fanout``): one stream, N subscribers, one publisher sending ``--messages``
events of ``--size`` bytes at ``--rate``/s; latency from the publisher's send to the kernel's
arrival stamp on each subscriber socket (see ``bench/_fanout_client.py``), every event at
every subscriber. A fresh server for every case; ``--repeats`` rounds, each running every peer
once (the order rotates, so drift on a shared machine hits every peer alike). Servers (and
Redis) are pinned to CPU 0, the client to CPU 1.

Peers (``--peers``): ``floor`` (uvloop transports, no ASGI: the measurement's own floor),
``raw`` (bare ASGI, one pre-encoded write per subscriber), ``streaming`` (Starlette
``StreamingResponse`` + one queue per subscriber), ``sse-starlette`` (+ one queue per
subscriber), ``mz-queue`` (mianzhang's ``EventSourceResponse`` + one queue per subscriber: the
engine without the log), ``mz-log`` (a bare ``MemoryEventLog`` stream, every subscriber a log reader
through ``mianzhang.log.serve``), ``mz-channel`` (``python -m mianzhang serve``: ``POST
/v1/channels/fanout/publish`` -> ``GET /v1/channels/fanout/events?history=false``, auth off),
``mz-redis2`` (two ``mianzhang serve`` processes sharing a ``redis-server`` started here with
``--save ""``; subscribers split between them, publish on the first; Redis ``INFO
commandstats`` deltas per published event, an idle window of the same servers subtracted).

**Idle** (``--mode idle``): server RSS growth per idle subscriber at ``--levels`` connections,
heartbeat every ``--ping`` s (5), how late the heartbeats arrive, and (``mianzhang serve``
peers) the server's event-loop lag over the same hold, from its ``/metrics`` (``_loop_lag.py``).

**Head** (``--mode head``): time from the request to the response head for a quiet channel
subscribe (``history=false``) and a log reader at the tail, vs a stream whose first event is
waiting (``history=1``); raw ASGI's head as the reference; ``--samples`` (100) each.

Results: ``bench/results/fanout.{json,md,png}``, ``fanout-idle.{json,md}``,
``fanout-head.{json,md}`` (``--out`` names another JSON). Loopback only; every client run has a
hard wall-clock cap, every process is stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench import _fanout_report as report  # noqa: E402
from tests._support.procs import (  # noqa: E402
    free_port,
    redis_process,
    serve_process,
    stop_process,
    uvicorn_process,
    wait_for_port,
)

RESULTS = ROOT / "bench" / "results"
PEERS = (
    "floor", "raw", "streaming", "sse-starlette", "mz-queue", "mz-log", "mz-channel", "mz-redis2",
)  # fmt: skip
IDLE_ONLY = ("mz-stream",)  # peers for --mode idle only (their readers get one event first)
SERVER_CPU, CLIENT_CPU = 0, 1
CHANNEL = "fanout"
UVICORN_ARGS = ("--loop", "uvloop", "--http", "httptools", "--lifespan", "off", "--backlog", "4096")


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve_env(ping: float, extra: dict[str, str] | None = None) -> dict[str, str]:
    """``mianzhang serve`` settings for the bench: room for 10,000+ connections, the heartbeat
    asked for; everything else at its default (memory log, auth off as nothing is configured)."""
    env = {
        "MIANZHANG_MAX_CONNECTIONS": "30000",
        "MIANZHANG_STREAM_PING": str(ping),
        "MIANZHANG_LOG_FORMAT": "text",
    }
    env.update(extra or {})
    return env


@contextlib.contextmanager
def floor_process(ping: float) -> Iterator[tuple[int, int]]:
    port = free_port()
    cmd = [sys.executable, "-m", "bench._fanout_floor", "--port", str(port), "--ping", str(ping)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
        yield port, proc.pid
    finally:
        stop_process(proc)


@contextlib.contextmanager
def servers(peer: str, ping: float) -> Iterator[dict[str, Any]]:
    """Start a fresh server (or two and Redis) for ``peer``; yield where to subscribe and
    publish: ``{"groups": [(port, path, share)], "publish": (port, path), "pids", ...}``."""
    if peer == "floor":
        with floor_process(ping) as (port, pid):
            yield {"groups": [(port, "/sub", 1.0)], "publish": (port, "/pub"), "pids": [pid]}
    elif peer in ("raw", "streaming", "sse-starlette", "mz-queue", "mz-log"):
        env = {"MZ_FANOUT_PEER": peer, "MZ_FANOUT_PING": str(ping)}
        with uvicorn_process("bench._fanout_apps:app", env=env, args=UVICORN_ARGS) as srv:
            yield {
                "groups": [(srv.port, "/sub", 1.0)],
                "publish": (srv.port, "/pub"),
                "pids": [srv.proc.pid],
            }
    elif peer == "mz-channel":
        with serve_process(env=serve_env(ping)) as srv:
            yield {
                "groups": [(srv.port, f"/v1/channels/{CHANNEL}/events?history=false", 1.0)],
                "publish": (srv.port, f"/v1/channels/{CHANNEL}/publish"),
                "pids": [srv.proc.pid],
                "metrics": [srv.port],  # /metrics: the event-loop lag (idle mode)
            }
    elif peer == "mz-stream":  # GET /v1/streams/{id}: the channel's log stream, read whole
        with serve_process(env=serve_env(ping)) as srv:
            publish = f"http://127.0.0.1:{srv.port}/v1/channels/{CHANNEL}/publish"
            made = urllib.request.Request(publish, data=b'{"data": "first"}', method="POST")
            made.add_header("Content-Type", "application/json")
            urllib.request.urlopen(made, timeout=10).close()  # the stream exists from here
            yield {
                "groups": [(srv.port, f"/v1/streams/channel:{CHANNEL}", 1.0)],
                "publish": (srv.port, f"/v1/channels/{CHANNEL}/publish"),
                "pids": [srv.proc.pid],
                "metrics": [srv.port],  # /metrics: the event-loop lag (idle mode)
            }
    elif peer == "mz-redis2":
        with redis_process() as redis, contextlib.ExitStack() as stack:
            env = serve_env(
                ping, {"MIANZHANG_LOG_BACKEND": "redis", "MIANZHANG_REDIS_URL": redis.url}
            )
            first = stack.enter_context(serve_process(env=env))
            second = stack.enter_context(serve_process(env=env))
            path = f"/v1/channels/{CHANNEL}/events?history=false"
            assert redis.proc is not None
            yield {
                "groups": [(first.port, path, 0.5), (second.port, path, 0.5)],
                "publish": (first.port, f"/v1/channels/{CHANNEL}/publish"),
                "pids": [first.proc.pid, second.proc.pid],
                "metrics": [first.port, second.port],
                "redis_port": redis.port,
                "redis_pid": redis.proc.pid,
            }
    else:
        raise ValueError(peer)


def run_client(spec: dict[str, Any], cap: float) -> dict[str, Any]:
    """The load client (``bench/_fanout_client.py``) on its own CPU; its JSON result."""
    pin = (lambda: os.sched_setaffinity(0, {CLIENT_CPU})) if can_pin() else None
    done = subprocess.run(
        [sys.executable, "-m", "bench._fanout_client"],
        cwd=ROOT,
        input=json.dumps(spec).encode(),
        capture_output=True,
        timeout=cap,
        preexec_fn=pin,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"client failed:\n{done.stderr.decode(errors='replace')[-2000:]}")
    return dict(json.loads(done.stdout.decode().strip().splitlines()[-1]))


def groups_of(target: dict[str, Any], n: int) -> list[dict[str, Any]]:
    groups = []
    left = n
    for i, (port, path, share) in enumerate(target["groups"]):
        count = left if i == len(target["groups"]) - 1 else int(n * share)
        left -= count
        groups.append({"port": port, "path": path, "count": count})
    return groups


# -- fan-out --------------------------------------------------------------------------------------
def fanout_case(peer: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    open_timeout = 60 + n / 50
    drain = 30.0 if n > 2000 else 15.0
    with servers(peer, 15.0) as target:
        spec = {
            "mode": "fanout",
            "subscribers": groups_of(target, n),
            "publish": {"port": target["publish"][0], "path": target["publish"][1]},
            "messages": args.messages,
            "rate": args.rate,
            "size": args.size,
            "warmup": 5,
            "server_pids": target["pids"]
            + ([target["redis_pid"]] if "redis_pid" in target else []),
            "redis_port": target.get("redis_port"),
            "idle_window": args.messages / args.rate if "redis_port" in target else 0,
            "open_timeout": open_timeout,
            "drain_timeout": drain,
            "concurrency": 200,
        }
        cap = open_timeout + 2 * drain + 2 * args.messages / args.rate + 5 / args.rate + 60
        return run_client(spec, cap)


def run_fanout(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "machine": report.machine(ROOT),
        "params": {
            "subscribers": args.subscribers,
            "messages": args.messages,
            "size": args.size,
            "rate": args.rate,
            "repeats": args.repeats,
            "peers": args.peers,
        },
        "runs": {},
    }
    started = time.monotonic()
    for n in args.subscribers:
        runs: dict[str, list[dict[str, Any]]] = {peer: [] for peer in args.peers}
        for r in range(args.repeats):
            shift = r % len(args.peers)
            for peer in args.peers[shift:] + args.peers[:shift]:
                t0 = time.monotonic()
                load = [round(x, 2) for x in os.getloadavg()]
                try:
                    outcome = fanout_case(peer, n, args)
                except Exception as exc:  # one failing case must not lose the others
                    outcome = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
                outcome["load_before"] = load
                outcome["case_seconds"] = round(time.monotonic() - t0, 1)
                runs[peer].append(outcome)
                lat = outcome.get("latency_ms", {})
                print(
                    f"N={n} #{r + 1} {peer}: p50 {lat.get('p50')} p99 {lat.get('p99')} "
                    f"max {lat.get('max')} ms, cpu {outcome.get('server_cpu_percent')} %, "
                    f"missing {outcome.get('missing')}, load {load[0]}, "
                    f"{outcome['case_seconds']} s {outcome.get('error', '')}",
                    flush=True,
                )
        results["runs"][str(n)] = runs
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


# -- idle ----------------------------------------------------------------------------------------
def run_idle(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "machine": report.machine(ROOT),
        "params": {"levels": args.levels, "ping": args.ping, "hold": args.hold},
        "peers": {},
    }
    started = time.monotonic()
    top = max(args.levels)
    for peer in args.peers:
        load = [round(x, 2) for x in os.getloadavg()]
        try:
            with servers(peer, args.ping) as target:
                spec = {
                    "mode": "idle",
                    "subscribers": groups_of(target, top),
                    "levels": args.levels,
                    "ping": args.ping,
                    "server_pids": target["pids"],
                    "metrics_ports": target.get("metrics", []),  # event-loop lag, mianzhang's
                    "settle": 2.0,
                    "hold": args.hold,
                    "open_timeout": 60 + top / 50,
                    "concurrency": 200,
                }
                cap = 90 + top / 50 + len(args.levels) * (args.hold + 10)
                outcome = run_client(spec, cap)
        except Exception as exc:
            outcome = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        outcome["load_before"] = load
        results["peers"][peer] = outcome
        for level in outcome.get("levels", []):
            late, lag = level["heartbeat_lateness_ms"], level.get("server_loop_lag") or {}
            print(
                f"idle {peer} @{level['connections']}: {level['kib_per_connection']} KiB/conn, "
                f"pings {level['pings_in_hold']}, lateness max {late.get('max')} ms, loop lag "
                f"max {lag.get('max_ms')} p99 {lag.get('p99_ms')} ms, load {load[0]}",
                flush=True,
            )
        if "error" in outcome:
            print(f"idle {peer}: {outcome['error']}", flush=True)
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


# -- head ----------------------------------------------------------------------------------------
def post(port: int, path: str, body: str) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body.encode(),
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status in (200, 201), answer.status


def run_head(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    machine = report.machine(ROOT)
    with contextlib.ExitStack() as stack:
        channel = stack.enter_context(servers("mz-channel", 15.0))
        log = stack.enter_context(servers("mz-log", 15.0))
        raw = stack.enter_context(servers("raw", 15.0))
        cport, lport, rport = channel["publish"][0], log["publish"][0], raw["publish"][0]
        post(cport, "/v1/channels/hist/publish", "T0:0:first event")
        post(lport, "/pub", "T0:0:first event")
        cases = [
            {"name": "channel, quiet (history=false)", "port": cport,
             "path": "/v1/channels/quiet/events?history=false"},
            {"name": "channel, first event waiting (history=1)", "port": cport,
             "path": "/v1/channels/hist/events?history=1", "event": True},
            {"name": "log reader at the tail (mz-log)", "port": lport, "path": "/sub"},
            {"name": "log reader, first event waiting (mz-log)", "port": lport,
             "path": "/sub?history=1", "event": True},
            {"name": "raw ASGI subscribe (reference)", "port": rport, "path": "/sub"},
        ]  # fmt: skip
        spec = {"mode": "head", "cases": cases, "samples": args.samples, "block": 10}
        load = [round(x, 2) for x in os.getloadavg()]
        outcome = run_client(spec, 60 + args.samples * len(cases) * 0.5)
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "command": "python " + " ".join(sys.argv),
        "machine": {**machine, "load_before": load},
        "params": {"samples": args.samples},
        "cases": outcome,
        "wall_seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mode", choices=("fanout", "idle", "head"), default="fanout")
    parser.add_argument("--peers", nargs="*", choices=PEERS + IDLE_ONLY, default=list(PEERS))
    parser.add_argument("--subscribers", type=int, nargs="*", default=[1_000, 10_000])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--levels", type=int, nargs="*", default=[1_000, 5_000, 10_000])
    parser.add_argument("--ping", type=float, default=5.0, help="idle mode's heartbeat (s)")
    parser.add_argument("--hold", type=float, default=11.0, help="idle mode: seconds per level")
    parser.add_argument("--samples", type=int, default=100, help="head mode: samples per case")
    parser.add_argument("--out", help="results JSON (default bench/results/fanout[-MODE].json)")
    parser.add_argument("--replot", action="store_true", help="only redo tables/chart from --out")
    args = parser.parse_args()
    bounded = (
        all(0 < n <= 15_000 for n in args.subscribers + args.levels)
        and 0 < args.messages <= 10_000
        and 0 < args.rate <= 1_000
        and 0 < args.repeats <= 10
        and 16 <= args.size <= 65_536
        and 0 < args.samples <= 2_000
    )
    if not bounded:
        parser.error("keep it bounded (N <= 15,000, messages <= 10,000, repeats <= 10)")
    suffix = "" if args.mode == "fanout" else f"-{args.mode}"
    out = Path(args.out) if args.out else RESULTS / f"fanout{suffix}.json"
    if args.replot:
        report.write(json.loads(out.read_text()), out, args.mode)
        return
    raise_nofile()  # servers inherit it: 10,000 connections need more than the usual 1,024
    if can_pin():
        os.sched_setaffinity(0, {SERVER_CPU})  # every server (and Redis) inherits CPU 0
    runner = {"fanout": run_fanout, "idle": run_idle, "head": run_head}[args.mode]
    results = runner(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    report.write(results, out, args.mode)


if __name__ == "__main__":
    main()
