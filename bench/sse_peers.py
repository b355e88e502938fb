"""SSE responses benchmark: mianzhang vs sse-starlette, fastapi.sse, StreamingResponse, raw ASGI.

    python bench/sse_peers.py            # full run (several minutes), the numbers in README
    python bench/sse_peers.py --quick    # smoke run (small counts, about a minute)
    MZ_BENCH_SERVER=mianzhang python bench/sse_peers.py   # under `mianzhang serve`'s server

Every peer (``bench/_sse_peer_apps.py``) runs under the same server: ``python -m uvicorn`` with
uvloop + httptools, one worker, fresh processes for every scenario, pinned to CPU 0. The load
client is another process (this file with ``--client``, uvloop, raw asyncio protocols, chunked
decoding and event counting by scanning for ``\\n\\n``) pinned to CPU 1. Loopback only. Each
event is 100 bytes on the wire. S1 and S5 run all peers' servers at once and interleave them
(round-robin), so drift on a shared machine hits every peer alike; S2 and S3 load one at a time.

* S1 one stream of 200,000 events, as fast as possible: events/s (median of 3 runs).
* S2 1,000 concurrent streams of 1,000 events each, all connecting at once: aggregate events/s
  and time to first event (from the start of ``connect``) p50/p99/max.
* S3 idle streams (one event, then the peer's 15 s heartbeat): server RSS growth per
  connection once 1,000 and 10,000 connections each received their first event.
* S5 2,000 sequential one-event streams, a new connection each: time from the start of
  ``connect`` to the complete first event, p50/p99. This client uses plain blocking sockets
  (one request at a time needs no event loop, and a loop's own turns would add to every sample).

Results (absolute and as ratios "mianzhang vs peer") go to ``bench/results/sse_peers.json`` and a
chart ``bench/results/sse_peers.png`` (``--quick`` writes ``sse_peers-quick.*`` instead).
Bounded: fixed counts, a wall-clock cap per client run, every process stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import resource
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench._sse_peer_apps import PEERS  # noqa: E402  (after the sys.path set-up)

RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"
LABELS = {
    "mianzhang": "mianzhang",
    "mianzhang-bytes": "mianzhang (bytes items)",
    "sse-starlette": "sse-starlette",
    "fastapi.sse": "fastapi.sse",
    "streaming": "StreamingResponse",
    "raw": "raw ASGI",
    "mianzhang-asgi": "mianzhang, ASGI app",
    "sse-starlette-asgi": "sse-starlette, ASGI app",
    "streaming-asgi": "StreamingResponse, ASGI app",
}
SCENARIOS = ("s1", "s2", "s3", "s5")
# mianzhang-bytes only differs from mianzhang by the encoder: it is measured where encoding matters
BYTES_VARIANT_IN = ("s1", "s2")
# the responses called as bare ASGI apps (no router): measured where per-request framework
# costs matter; they are compared with mianzhang-asgi, like raw ASGI (also without a router)
ASGI_VARIANTS = ("mianzhang-asgi", "sse-starlette-asgi", "streaming-asgi")
ASGI_VARIANTS_IN = ("s3", "s5")
NO_ROUTER = ("sse-starlette-asgi", "streaming-asgi", "raw")
SERVER_CPU, CLIENT_CPU = 0, 1
INTERLEAVED = ("s1", "s5")
S5_BLOCK = 50


# =============================================================================================
# Load client (runs in its own process: ``--client``)
# =============================================================================================
HEADERS, SIZE, BODY, CRLF, DONE = range(5)


class SSEStream(asyncio.Protocol):
    """One HTTP/1.1 request whose chunked body is counted in SSE events (``\\n\\n``).

    ``t0`` is when the connection attempt started; ``t_first`` when the first complete event
    arrived; ``finished`` resolves at the terminating chunk (or fails if the peer closes early).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, t0: float) -> None:
        self.t0 = t0
        self.t_connected: float | None = None
        self.t_sent: float | None = None
        self.t_headers: float | None = None
        self.t_first: float | None = None
        self.t_done: float | None = None
        self.events = 0  # messages ending in a blank line, heartbeats included
        self.pings = 0
        self.body_bytes = 0
        self.state = HEADERS
        self.remaining = 0
        self.last_nl = False
        self.pending = b""
        self.transport: asyncio.Transport | None = None
        self.closing = False
        self.first = loop.create_future()
        self.finished = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t_connected = time.perf_counter()
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closing:  # we hung up: nobody waits for these any more
            self.first.cancel()
            self.finished.cancel()
            return
        if not self.finished.done():
            self.finished.set_exception(ConnectionError(f"closed before the end: {exc!r}"))
        if not self.first.done():
            self.first.set_exception(ConnectionError(f"closed before an event: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        if self.pending:
            data = self.pending + data
            self.pending = b""
        pos, n = 0, len(data)
        while pos < n:
            state = self.state
            if state == BODY:
                end = min(n, pos + self.remaining)
                count = data.count(b"\n\n", pos, end)
                self.pings += data.count(b"\n: ping", pos, end)  # sse-starlette pings while busy
                if self.last_nl and data[pos] == 10:
                    count += 1
                self.last_nl = data[end - 1] == 10
                self.body_bytes += end - pos
                self.remaining -= end - pos
                pos = end
                if self.remaining == 0:
                    self.state = CRLF
                if count:
                    if not self.events:
                        self.t_first = time.perf_counter()
                        self.first.set_result(None)
                    self.events += count
            elif state == CRLF:
                if n - pos < 2:
                    break
                pos += 2
                self.state = SIZE
            elif state == SIZE:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(data[pos:eol].split(b";", 1)[0], 16)
                pos = eol + 2
                if size == 0:
                    self.state = DONE
                    self.t_done = time.perf_counter()
                    if not self.first.done():
                        self.first.set_exception(ConnectionError("stream ended without events"))
                    self.finished.set_result(None)
                    return
                self.remaining = size
                self.state = BODY
            elif state == HEADERS:
                eoh = data.find(b"\r\n\r\n", pos)
                if eoh < 0:
                    break
                head = data[pos:eoh].lower()
                if (
                    not head.startswith(b"http/1.1 200")
                    or b"transfer-encoding: chunked" not in head
                ):
                    self._fail(RuntimeError(f"unexpected response head: {head[:300]!r}"))
                    return
                pos = eoh + 4
                self.state = SIZE
                self.t_headers = time.perf_counter()
            else:
                return
        if pos < n:
            self.pending = data[pos:]

    def _fail(self, exc: Exception) -> None:
        self.state = DONE
        for future in (self.first, self.finished):
            if not future.done():
                future.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def close(self, reset: bool = False) -> None:
        self.closing = True
        if self.transport is not None:
            if reset:  # RST instead of FIN: no TIME_WAIT pile-up of 10k client sockets
                sock = self.transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.close()


async def open_stream(port: int, path: str) -> SSEStream:
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    _, stream = await loop.create_connection(lambda: SSEStream(loop, t0), HOST, port)
    assert stream.transport is not None
    stream.transport.write(
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    stream.t_sent = time.perf_counter()
    return stream


def cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def rss_kib(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 1024


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def full_stream(port: int, n: int) -> SSEStream:
    stream = await open_stream(port, f"/stream?n={n}")
    try:
        await stream.finished
    finally:
        stream.close()
    if not 0 <= stream.events - n <= stream.pings + 1:  # +1: a ping split between two reads
        raise RuntimeError(f"expected {n} events, counted {stream.events} ({stream.pings} pings)")
    stream.events = n
    return stream


Target = tuple[str, int, int]  # peer, port, server pid


async def client_s1(targets: list[Target], args: argparse.Namespace) -> dict[str, Any]:
    """Round-robin over the peers for each repeat, so drift on a shared box hits all alike."""
    for _, port, _ in targets:
        await full_stream(port, 2_000)  # warm-up
    runs: dict[str, list[dict[str, float]]] = {peer: [] for peer, _, _ in targets}
    for _ in range(args.repeat):
        for peer, port, pid in targets:
            cpu0, own0 = cpu_seconds(pid), time.process_time()
            stream = await full_stream(port, args.events)
            assert stream.t_done is not None
            elapsed = stream.t_done - stream.t0
            runs[peer].append(
                {
                    "events_per_s": stream.events / elapsed,
                    "seconds": elapsed,
                    "server_cpu_s": cpu_seconds(pid) - cpu0,
                    "client_cpu_s": time.process_time() - own0,
                }
            )
    out = {}
    for peer, peer_runs in runs.items():
        median = sorted(peer_runs, key=lambda r: r["events_per_s"])[len(peer_runs) // 2]
        cpu = sum(r["server_cpu_s"] for r in peer_runs)
        per_cpu = args.events * len(peer_runs) / cpu if cpu else None
        out[peer] = {
            "events": args.events,
            "runs": peer_runs,
            **median,
            "events_per_server_cpu_s": per_cpu,
        }
    return out


async def client_s2(targets: list[Target], args: argparse.Namespace) -> dict[str, Any]:
    return {peer: await one_s2(port, pid, args) for peer, port, pid in targets}


async def one_s2(port: int, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    await asyncio.gather(*(full_stream(port, 100) for _ in range(10)))  # warm-up
    cpu0 = cpu_seconds(pid)
    start = time.perf_counter()
    opened = await asyncio.gather(
        *(open_stream(port, f"/stream?n={args.events}") for _ in range(args.streams))
    )
    try:
        await asyncio.gather(*(s.finished for s in opened))
    finally:
        for s in opened:
            s.close()
    end = max(s.t_done or 0.0 for s in opened)
    for s in opened:
        if not 0 <= s.events - args.events <= s.pings + 1:
            raise RuntimeError(f"expected {args.events} events, counted {s.events}")
    total = args.streams * args.events
    firsts = [((s.t_first or 0.0) - s.t0) * 1000 for s in opened]
    connects = [((s.t_connected or 0.0) - s.t0) * 1000 for s in opened]
    heads = [((s.t_headers or 0.0) - s.t0) * 1000 for s in opened]
    return {
        "streams": args.streams,
        "events": args.events,
        "events_per_s": total / (end - start),
        "seconds": end - start,
        "first_event_p50_ms": pct(firsts, 0.50),
        "first_event_p99_ms": pct(firsts, 0.99),
        "first_event_max_ms": max(firsts),
        "connected_p50_ms": pct(connects, 0.50),
        "connected_p99_ms": pct(connects, 0.99),
        "headers_p50_ms": pct(heads, 0.50),
        "headers_p99_ms": pct(heads, 0.99),
        "server_cpu_s": (cpu := cpu_seconds(pid) - cpu0),
        "events_per_server_cpu_s": total / cpu if cpu else None,
    }


async def client_s3(targets: list[Target], args: argparse.Namespace) -> dict[str, Any]:
    return {peer: await one_s3(port, pid, args) for peer, port, pid in targets}


async def one_s3(port: int, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    warm = await open_stream(port, "/idle")  # warm-up: imports, first allocations
    await warm.first
    warm.close(reset=True)
    await asyncio.sleep(0.5)  # let the server notice the reset and free that stream
    base = rss_kib(pid)
    held: list[SSEStream] = []
    gate = asyncio.Semaphore(200)  # connections being opened at once

    async def one() -> None:
        async with gate:
            stream = await open_stream(port, "/idle")
            held.append(stream)
            await stream.first

    levels = []
    start = time.perf_counter()
    try:
        for target in args.counts:
            try:
                await asyncio.gather(*(one() for _ in range(target - len(held))))
            except OSError as exc:  # e.g. EMFILE / EADDRNOTAVAIL: report what was reached
                levels.append({"connections": len(held), "error": repr(exc)})
                break
            await asyncio.sleep(0.5)  # settle: late allocations of the last connections
            rss = rss_kib(pid)
            levels.append(
                {
                    "connections": len(held),
                    "seconds_to_open": time.perf_counter() - start,
                    "server_rss_mib": rss / 1024,
                    "kib_per_connection": (rss - base) / len(held),
                }
            )
    finally:
        for stream in held:
            stream.close(reset=True)
    return {"baseline_rss_mib": base / 1024, "levels": levels}


def one_event_blocking(port: int) -> float:
    """One request on a new connection with plain blocking sockets: milliseconds from the
    start of ``connect`` to the complete first event. (An event-loop client adds its own loop
    turns to every sample, about 0.35 ms here, which hides the servers' differences.)"""
    request = f"GET /stream?n=1 HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    t0 = time.perf_counter()
    with socket.create_connection((HOST, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)
        data = b""
        while (head_end := data.find(b"\r\n\r\n")) < 0 or data.find(b"\n\n", head_end) < 0:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before an event: {data[:300]!r}")
            data += chunk
        first = time.perf_counter()
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before the end: {data[-300:]!r}")
            data += chunk
    head, body = data[: head_end + 4], data[head_end + 4 :]
    if not head.lower().startswith(b"http/1.1 200") or body.count(b"\n\n") != 1:
        raise RuntimeError(f"expected one event, got {data[:400]!r}")
    return (first - t0) * 1000


async def client_s5(targets: list[Target], args: argparse.Namespace) -> dict[str, Any]:
    """Sequential requests in blocks of ``S5_BLOCK`` per peer, round-robin over the peers (drift
    hits all alike; within a block the server is warm, as under a steady stream of requests)."""
    for _, port, _ in targets:  # warm-up
        for _ in range(S5_BLOCK):
            one_event_blocking(port)
    samples: dict[str, list[float]] = {peer: [] for peer, _, _ in targets}
    cpu0 = {peer: cpu_seconds(pid) for peer, _, pid in targets}
    for _ in range(0, args.requests, S5_BLOCK):
        for peer, port, _ in targets:
            samples[peer] += [one_event_blocking(port) for _ in range(S5_BLOCK)]
    out = {}
    for peer, _, pid in targets:
        mine = samples[peer]
        out[peer] = {
            "requests": len(mine),
            "p50_ms": pct(mine, 0.50),
            "p99_ms": pct(mine, 0.99),
            "mean_ms": statistics.fmean(mine),
            "server_cpu_us_per_request": (cpu_seconds(pid) - cpu0[peer]) / len(mine) * 1e6,
        }
    return out


CLIENTS = {"s1": client_s1, "s2": client_s2, "s3": client_s3, "s5": client_s5}


def run_client(args: argparse.Namespace) -> None:
    import uvloop

    raise_nofile()

    async def main() -> dict[str, Any]:
        async with asyncio.timeout(args.cap):
            targets = []
            for spec in args.targets:
                peer, _, rest = spec.partition("=")
                port, _, pid = rest.partition(":")
                targets.append((peer, int(port), int(pid)))
            return await CLIENTS[args.client](targets, args)

    result = uvloop.run(main())
    print(json.dumps(result), flush=True)


# =============================================================================================
# Orchestrator
# =============================================================================================
def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def pin_all_threads(pid: int, cpu: int) -> None:
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task), {cpu})


LAUNCHERS = {"uvicorn": "uvicorn", "mianzhang": "bench._mz_serve"}
"""``MZ_BENCH_SERVER``: plain uvicorn (the default: what every peer gets), or ``mianzhang``:
``mianzhang serve``'s server (``bench/_mz_serve.py``: its protocol with the transport
extension, send buffer, unsent limit, watchdog and reset on a cut, configured by
``MIANZHANG_*``, and its acceptor, which accepts connections in batches)."""


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)


@contextlib.contextmanager
def server(peer: str) -> Iterator[Any]:
    from tests._support.procs import uvicorn_process

    module = LAUNCHERS[os.environ.get("MZ_BENCH_SERVER", "uvicorn")]
    args = ("--loop", "uvloop", "--http", "httptools", "--lifespan", "off", "--backlog", "4096")
    env = {"MZ_BENCH_PEER": peer}
    app = "bench._sse_peer_apps:app"
    with uvicorn_process(app, env=env, args=args, graceful_timeout=2, module=module) as srv:
        if can_pin():
            pin_all_threads(srv.proc.pid, SERVER_CPU)
        yield srv


def client(scenario: str, targets: list[Target], params: dict[str, Any], cap: float) -> Any:
    """Run the load client (this file, ``--client``) on its own CPU; its JSON result per peer."""
    cmd = [sys.executable, __file__, "--client", scenario, "--cap", str(cap), "--targets"]
    cmd += [f"{peer}={port}:{pid}" for peer, port, pid in targets]
    for key, value in params.items():
        flag = "--" + key.replace("_", "-")
        cmd += [flag, *map(str, value)] if isinstance(value, list | tuple) else [flag, str(value)]
    pin = (lambda: os.sched_setaffinity(0, {CLIENT_CPU})) if can_pin() else None
    done = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, timeout=cap + 30, preexec_fn=pin, check=False
    )
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace")[-1500:]
        raise RuntimeError(f"client {scenario} failed:\n{err}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def plan(quick: bool) -> dict[str, tuple[dict[str, Any], float]]:
    """Per scenario: client parameters and the wall-clock cap of one client run (seconds)."""
    if quick:
        return {
            "s1": ({"events": 20_000, "repeat": 1}, 120),
            "s2": ({"streams": 100, "events": 100}, 60),
            "s3": ({"counts": [100, 1_000]}, 60),
            "s5": ({"requests": 200}, 60),
        }
    return {
        "s1": ({"events": 200_000, "repeat": 3}, 600),
        "s2": ({"streams": 1_000, "events": 1_000}, 400),
        "s3": ({"counts": [1_000, 10_000]}, 240),
        "s5": ({"requests": 2_000}, 300),
    }


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in ("uvicorn", "uvloop", "httptools", "starlette", "fastapi", "sse-starlette"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    sources = {}
    for name in ("_responses", "_sse"):  # what was measured, when src/ is being edited
        package = ROOT / "src" / "mianzhang" / name
        digest = hashlib.sha256()
        for path in sorted(package.glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        sources[name] = digest.hexdigest()[:12]
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, check=False
    )
    return {
        "git_head": head.stdout.decode().strip(),
        "source_sha256": sources,
        "platform": platform.platform(),
        "cpu": model,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": versions,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "pinned": f"server CPU {SERVER_CPU}, client CPU {CLIENT_CPU}" if can_pin() else "no",
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
    }


# -- ratios -----------------------------------------------------------------------------------
# (scenario, metric, higher_is_better, label)
METRICS = [
    ("s1", "events_per_s", True, "S1 events/s"),
    ("s2", "events_per_s", True, "S2 events/s"),
    ("s2", "first_event_p99_ms", False, "S2 first event p99"),
    ("s3", "kib_per_connection@0", False, "S3 KiB/conn (1st level)"),
    ("s3", "kib_per_connection@1", False, "S3 KiB/conn (2nd level)"),
    ("s5", "p50_ms", False, "S5 p50"),
    ("s5", "p99_ms", False, "S5 p99"),
]


def metric(results: dict[str, Any], scenario: str, peer: str, key: str) -> float | None:
    entry = results.get(scenario, {}).get(peer)
    if not entry or "error" in entry:
        return None
    if "@" in key:
        name, index = key.split("@")
        levels = entry["levels"]
        if int(index) >= len(levels):
            return None
        value = levels[int(index)].get(name)
    else:
        value = entry.get(key)
    return None if value is None else float(value)


def base_of(results: dict[str, Any], scenario: str, peer: str) -> str:
    """The mianzhang variant a peer is compared with: the router-less one for router-less
    peers where it was measured, else mianzhang on a Starlette route."""
    if peer in NO_ROUTER and "mianzhang-asgi" in results.get(scenario, {}):
        return "mianzhang-asgi"
    return "mianzhang"


def ratios(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``advantage[label][peer]``: how many times better mianzhang is than the peer (>1 wins):
    mianzhang/peer for throughput, peer/mianzhang for latency and memory."""
    out: dict[str, dict[str, float]] = {}
    for scenario, key, higher, label in METRICS:
        row = {}
        for peer in PEERS:
            if peer in ("mianzhang", "mianzhang-asgi"):
                continue
            mine = metric(results, scenario, base_of(results, scenario, peer), key)
            theirs = metric(results, scenario, peer, key)
            if mine is None or theirs is None or theirs == 0 or mine == 0:
                continue
            row[peer] = mine / theirs if higher else theirs / mine
        if row:
            out[label] = row
    return out


def check_targets(results: dict[str, Any]) -> dict[str, Any]:
    s1 = metric(results, "s1", "mianzhang", "events_per_s")
    s1_raw = metric(results, "s1", "raw", "events_per_s")
    s2 = metric(results, "s2", "mianzhang", "events_per_s")
    s2_stream = metric(results, "s2", "streaming", "events_per_s")
    p99 = metric(results, "s2", "mianzhang", "first_event_p99_ms")

    def s3_of(peer: str) -> list[Any]:
        levels = results.get("s3", {}).get(peer, {}).get("levels", [])
        return [lvl.get("kib_per_connection") for lvl in levels]

    # S3 and S5 are judged on the response as an ASGI app, like the raw ASGI reference (a
    # Starlette route adds its own per-request cost to every peer); both are reported
    s3, s3_routed = s3_of("mianzhang-asgi"), s3_of("mianzhang")
    s5 = metric(results, "s5", "mianzhang-asgi", "p50_ms")
    s5_routed = metric(results, "s5", "mianzhang", "p50_ms")
    out: dict[str, Any] = {}
    if s1 is not None and s1_raw:
        out["S1 >= 0.8x raw ASGI"] = {"value": s1 / s1_raw, "met": s1 / s1_raw >= 0.8}
    if s2 is not None and s2_stream and p99 is not None:
        ok = s2 / s2_stream >= 1.5 and p99 <= 1000
        out["S2 >= 1.5x StreamingResponse, first-event p99 <= 1 s"] = {
            "value": [s2 / s2_stream, p99],
            "met": ok,
        }
    if s3 and all(v is not None for v in s3):
        out["S3 <= 16 KiB per connection (ASGI app)"] = {
            "value": s3,
            "met": max(s3) <= 16,
            "on a Starlette route": s3_routed,
        }
    if s5 is not None:
        out["S5 p50 <= 0.3 ms (ASGI app)"] = {
            "value": s5,
            "met": s5 <= 0.3,
            "on a Starlette route": s5_routed,
        }
    return out


# -- output -----------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def table(results: dict[str, Any]) -> str:
    adv = ratios(results)
    lines: list[str] = []

    def x(label: str, peer: str) -> str:
        value = adv.get(label, {}).get(peer)
        return "—" if value is None else f"{value:.2f}x"

    def peers_of(scenario: str) -> list[str]:
        return [p for p in PEERS if p in results.get(scenario, {})]

    if "s1" in results:
        lines += [
            f"**S1** one stream, {fmt(results['params']['s1']['events'])} events of 100 B "
            f"(median of {results['params']['s1']['repeat']} runs)",
            "",
            "| peer | events/s | events per server CPU s | mianzhang advantage |",
            "|---|---:|---:|---:|",
        ]
        for p in peers_of("s1"):
            e = results["s1"][p]
            lines.append(
                f"| {LABELS[p]} | {fmt(e.get('events_per_s'))} | "
                f"{fmt(e.get('events_per_server_cpu_s'))} | {x('S1 events/s', p)} |"
            )
        lines.append("")
    if "s2" in results:
        par = results["params"]["s2"]
        lines += [
            f"**S2** {fmt(par['streams'])} concurrent streams x {fmt(par['events'])} events",
            "",
            "| peer | events/s | events per server CPU s | first event p50 ms | p99 ms "
            "| max ms | advantage events/s | advantage p99 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for p in peers_of("s2"):
            e = results["s2"][p]
            lines.append(
                f"| {LABELS[p]} | {fmt(e.get('events_per_s'))} | "
                f"{fmt(e.get('events_per_server_cpu_s'))} | "
                f"{fmt(e.get('first_event_p50_ms'), 1)} | {fmt(e.get('first_event_p99_ms'), 1)} | "
                f"{fmt(e.get('first_event_max_ms'), 1)} | "
                f"{x('S2 events/s', p)} | {x('S2 first event p99', p)} |"
            )
        lines.append("")
    if "s3" in results:
        counts = results["params"]["s3"]["counts"]
        head = " | ".join(f"KiB/conn @{fmt(c)}" for c in counts)
        adv_head = " | ".join(f"advantage @{fmt(c)}" for c in counts)
        lines += [
            "**S3** idle streams with a 15 s heartbeat: server RSS growth per connection",
            "",
            f"| peer | {head} | reached | {adv_head} |",
            "|---|" + "---:|" * (2 * len(counts) + 1),
        ]
        for p in peers_of("s3"):
            e = results["s3"][p]
            levels = e.get("levels", [])
            vals = [
                fmt(levels[i].get("kib_per_connection"), 1) if i < len(levels) else "—"
                for i in range(len(counts))
            ]
            reached = fmt(levels[-1]["connections"]) if levels else "—"
            advs = [
                x(f"S3 KiB/conn ({'1st' if i == 0 else '2nd'} level)", p)
                for i in range(len(counts))
            ]
            lines.append(f"| {LABELS[p]} | {' | '.join(vals)} | {reached} | {' | '.join(advs)} |")
        lines.append("")
    if "s5" in results:
        lines += [
            f"**S5** {fmt(results['params']['s5']['requests'])} sequential one-event streams, "
            "new connection each, connect start -> first event",
            "",
            "| peer | p50 ms | p99 ms | server CPU µs/request | advantage p50 | advantage p99 |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for p in peers_of("s5"):
            e = results["s5"][p]
            lines.append(
                f"| {LABELS[p]} | {fmt(e.get('p50_ms'), 3)} | {fmt(e.get('p99_ms'), 3)} | "
                f"{fmt(e.get('server_cpu_us_per_request'))} | "
                f"{x('S5 p50', p)} | {x('S5 p99', p)} |"
            )
        lines.append("")
    lines.append(
        '"mianzhang advantage" = how many times better mianzhang is than that peer '
        "(its events/s over the peer's; the peer's latency or memory over mianzhang's): "
        '>1 means mianzhang wins. Peers marked "ASGI app" and raw ASGI run without a router '
        "and are compared with mianzhang as an ASGI app; the others with mianzhang on a "
        "Starlette route."
    )
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    adv = ratios(results)
    panels = [
        ("S1 one stream: events/s", ["S1 events/s"], {"raw": 0.8}),
        (
            "S2 1k streams: events/s, first-event p99",
            ["S2 events/s", "S2 first event p99"],
            {"streaming": 1.5},
        ),
        ("S3 idle: KiB per connection", ["S3 KiB/conn (1st level)", "S3 KiB/conn (2nd level)"], {}),
        ("S5 time to first event", ["S5 p50", "S5 p99"], {}),
    ]
    counts = results.get("params", {}).get("s3", {}).get("counts", [])
    levels = zip(("1st", "2nd"), counts, strict=False)
    legend = {f"S3 KiB/conn ({n} level)": f"@{c:,} connections" for n, c in levels}
    legend.update({"S2 events/s": "events/s", "S2 first event p99": "first event p99"})
    legend.update({"S5 p50": "p50", "S5 p99": "p99"})
    fig, grid = plt.subplots(2, 2, figsize=(12, 9))
    axes = list(grid.flat)
    colors = ["#4477aa", "#ee6677"]
    for ax, (title, labels, goal) in zip(axes, panels, strict=True):
        peers = [
            p for p in PEERS if p != "mianzhang" and any(p in adv.get(lb, {}) for lb in labels)
        ]
        width = 0.8 / max(1, len(labels))
        for i, label in enumerate(labels):
            xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(peers))]
            ys = [adv.get(label, {}).get(p, float("nan")) for p in peers]
            bars = ax.bar(xs, ys, width, label=legend.get(label, label), color=colors[i % 2])
            for bar, y in zip(bars, ys, strict=True):
                if y == y:  # not NaN
                    ax.annotate(
                        f"{y:.2f}",
                        (bar.get_x() + bar.get_width() / 2, y),
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
        for j, p in enumerate(peers):
            if p in goal:
                ax.plot([j - 0.45, j + 0.45], [goal[p], goal[p]], "k--", linewidth=1)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(peers)))
        names = [
            LABELS[p].replace(" (", "\n(").replace(", ", ",\n").replace("Streaming", "Streaming\n")
            for p in peers
        ]
        ax.set_xticklabels(names, fontsize=7 if len(peers) > 5 else 8)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("mianzhang advantage (x, >1 = mianzhang better)", fontsize=7)
        if len(labels) > 1:
            ax.legend(fontsize=7)
    fig.suptitle(
        "mianzhang EventSourceResponse: how many times better than each peer "
        "(log scale; >1 = mianzhang better; dashed = target)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def orchestrate(args: argparse.Namespace) -> None:
    raise_nofile()
    scenarios = args.scenarios or list(SCENARIOS)
    peers = args.peers or list(PEERS)
    steps = plan(args.quick)
    results: dict[str, Any] = {
        "command": "python bench/sse_peers.py" + (" --quick" if args.quick else ""),
        "machine": machine(),
        "params": {s: steps[s][0] for s in scenarios},
    }
    started = time.perf_counter()
    for scenario in scenarios:
        params, cap = steps[scenario]
        results[scenario] = {}
        mine = [
            p
            for p in peers
            if (p != "mianzhang-bytes" or scenario in BYTES_VARIANT_IN)
            and (p not in ASGI_VARIANTS or scenario in ASGI_VARIANTS_IN)
        ]
        # S1 and S5 interleave the peers (all servers up, idle ones cost nothing); S2 and S3
        # load one server at a time (their load would disturb the others)
        groups = [mine] if scenario in INTERLEAVED else [[p] for p in mine]
        for group in groups:
            try:
                with contextlib.ExitStack() as stack:
                    targets = []
                    for peer in group:
                        srv = stack.enter_context(server(peer))
                        targets.append((peer, srv.port, srv.proc.pid))
                    outcome = client(scenario, targets, params, cap)
            except Exception as exc:
                outcome = {peer: {"error": f"{type(exc).__name__}: {exc}"[:2000]} for peer in group}
            for peer in group:
                results[scenario][peer] = outcome[peer]
                print(f"{scenario} {peer}: {json.dumps(outcome[peer])[:300]}", flush=True)
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["advantage"] = ratios(results)
    results["targets"] = check_targets(results)
    suffix = "-quick" if args.quick else ""
    out = Path(args.out) if args.out else RESULTS / f"sse_peers{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    chart(results, out.with_suffix(".png"))
    print()
    print(table(results))
    print()
    print(json.dumps(results["targets"], indent=2))
    print(f"\nwrote {out} and {out.with_suffix('.png')} in {results['wall_seconds']} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--scenarios", nargs="*", choices=SCENARIOS)
    parser.add_argument("--peers", nargs="*", choices=PEERS)
    parser.add_argument("--out", help="results JSON path (the PNG goes next to it)")
    parser.add_argument(
        "--replot", action="store_true", help="only redraw the chart and tables from --out"
    )
    # client mode (internal)
    parser.add_argument("--client", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--targets", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--cap", type=float, default=120.0, help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--streams", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--counts", type=int, nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        bounds = [(args.events, 1_000_000), (args.streams, 2_000), (args.requests, 10_000)]
        if any(v is not None and not 0 < v <= cap for v, cap in bounds) or any(
            not 0 < c <= 15_000 for c in args.counts or []
        ):
            parser.error("keep it bounded")
        run_client(args)
    elif args.replot:
        out = Path(args.out) if args.out else RESULTS / "sse_peers.json"
        results = json.loads(out.read_text())
        chart(results, out.with_suffix(".png"))
        print(table(results))
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
