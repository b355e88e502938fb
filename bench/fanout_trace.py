"""Where the time and memory of mianzhang's fan-out go: profile, wait trace, idle memory.

    python bench/fanout_trace.py profile --subscribers 1000     # py-spy on `mianzhang serve`
    python bench/fanout_trace.py wait --subscribers 1000        # append -> write, per reader
    python bench/fanout_trace.py memory --subscribers 1000      # tracemalloc of idle streams

* ``profile``: the fan-out bench's ``mz-channel`` case (``bench/fanout.py``) with ``py-spy
  record --nonblocking --idle --function`` on the server for the publish window (py-spy runs
  on the client's CPU); the folded stacks go to ``results/fanout-profile-N.txt`` and the top
  entries (self and cumulative, share of busy samples) to ``results/fanout-profile-N.json``.
* ``wait``: the channel app (``create_app``, memory log) runs in this process under uvicorn
  (uvloop + httptools) with timestamps added from outside by wrapping functions at run time
  (nothing in ``src/`` changes): the append, each reader's wake-up and enqueue (a push to a
  parked reader, ``Sender.deliver``, or a reader on its own path encoding the event,
  ``log.serve.sse_bytes``), the socket write (uvicorn's ``send`` of the body), each tagged
  with the event-loop iteration it ran in (a ticker callback counts iterations while an
  event is in flight), plus fair-turn waits and GC pauses. Writes
  ``results/fanout-wait-N.json``.
* ``memory``: the same in-process app; N idle subscribers (quiet channel); ``tracemalloc``
  snapshots before and after, and a census of GC-tracked objects by type: bytes and objects
  per idle stream. Writes ``results/fanout-memory-N.json``.

The in-process harnesses locate the engine's classes by name inside ``mianzhang._responses``
(module or package), so they survive that module being split up.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import importlib
import itertools
import json
import os
import pkgutil
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench import fanout  # noqa: E402
from bench._fanout_report import machine  # noqa: E402

RESULTS = ROOT / "bench" / "results"


# -- profile ------------------------------------------------------------------------------------
def parse_folded(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw output: one ``frame;frame;...;frame count`` line per distinct stack,
    outermost frame first (process and thread pseudo-frames dropped)."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        stacks.append((frames, int(count)))
    return stacks


def _short(frame: str) -> str:
    """``function (path/to/module.py:12)`` without the long path."""
    found = re.match(r"(.*) \((.*?):(\d+)\)$", frame)
    if not found:
        return frame
    name, path, line = found.groups()
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path}:{line})"


# innermost frames that mean "waiting": the loop in epoll (native) or, without native
# frames, the loop's own C code with no Python frame above it
IDLE_FRAMES = ("epoll_pwait", "epoll_wait", "Runner.run (asyncio/runners.py", "select (selectors")
PYTHON_CATEGORIES = (  # (path fragment, category), first match wins
    ("mianzhang/_responses", "mianzhang response engine (_responses)"),
    ("mianzhang/_turns", "mianzhang fair turns (_turns)"),
    ("mianzhang/log/", "mianzhang log (follow, log_events)"),
    ("mianzhang/channels", "mianzhang channels + server routes, middleware"),
    ("mianzhang/server", "mianzhang channels + server routes, middleware"),
    ("starlette/", "Starlette/FastAPI (middleware, routing, request)"),
    ("fastapi/", "Starlette/FastAPI (middleware, routing, request)"),
    ("uvicorn/", "uvicorn (HTTP protocol, send)"),
    ("asyncio/", "asyncio Python (timeouts, tasks helpers)"),
    ("anyio/", "anyio"),
)
NATIVE_CATEGORIES = (
    ("gcmodule.c", "garbage collector"),
    ("write (libc", "socket write syscall (kernel: loopback TCP)"),
    ("writev (libc", "socket write syscall (kernel: loopback TCP)"),
    ("sendmsg (libc", "socket write syscall (kernel: loopback TCP)"),
    ("read (libc", "socket read syscall"),
    ("recv", "socket read syscall"),
    ("accept", "accept syscall"),
    ("loop.c", "uvloop (C: handles, transports)"),
    ("_asynciomodule.c", "asyncio C (futures, tasks)"),
    ("parser.c", "httptools parser (C)"),
    ("llhttp", "httptools parser (C)"),
)


def category(frames: list[str]) -> str:
    """What one busy sample was doing: the garbage collector if it is anywhere on the stack,
    else the innermost frame with a known category (interpreter internals are skipped)."""
    if any("gcmodule.c" in f or "gc_collect" in f for f in frames):
        return "garbage collector"
    for frame in reversed(frames):
        for fragment, name in NATIVE_CATEGORIES:
            if fragment in frame:
                return name
        if ".py:" in frame:
            for fragment, name in PYTHON_CATEGORIES:
                if fragment in frame:
                    return name
            return "other Python"
    return "interpreter / other native"


def is_idle(frames: list[str]) -> bool:
    """A sample of the loop waiting for I/O, or of an idle thread."""
    if not frames:
        return True
    last = frames[-1]
    return any(marker in last for marker in IDLE_FRAMES) or "wait (threading.py" in last


def top_entries(stacks: list[tuple[list[str], int]], limit: int = 40) -> dict[str, Any]:
    total = sum(count for _, count in stacks)
    busy_stacks = [(frames, count) for frames, count in stacks if not is_idle(frames)]
    busy = sum(count for _, count in busy_stacks)
    self_counts: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    categories: collections.Counter[str] = collections.Counter()
    for frames, count in busy_stacks:
        short = [_short(f) for f in frames]
        self_counts[short[-1]] += count
        for frame in set(short):
            cumulative[frame] += count
        categories[category(frames)] += count

    def table(counter: collections.Counter[str]) -> list[dict[str, Any]]:
        return [
            {"frame": frame, "samples": n, "busy_percent": round(100 * n / busy, 1)}
            for frame, n in counter.most_common(limit)
        ]

    return {
        "samples": total,
        "busy_samples": busy,
        "busy_percent_of_wall": round(100 * busy / total, 1) if total else None,
        "categories": [
            {"category": name, "busy_percent": round(100 * n / busy, 1)}
            for name, n in categories.most_common()
        ],
        "self": table(self_counts),
        "cumulative": table(cumulative),
    }


def run_profile(args: argparse.Namespace) -> None:
    n = args.subscribers
    folded = RESULTS / f"fanout-profile-{n}{args.suffix}.txt"
    opts = argparse.Namespace(messages=args.messages, rate=args.rate, size=100)
    load = [round(x, 2) for x in os.getloadavg()]
    fanout.raise_nofile()
    if fanout.can_pin():
        os.sched_setaffinity(0, {fanout.SERVER_CPU})
    with fanout.servers(args.peer, 15.0) as target:
        spec = {
            "mode": "fanout",
            "subscribers": fanout.groups_of(target, n),
            "publish": {"port": target["publish"][0], "path": target["publish"][1]},
            "messages": opts.messages,
            "rate": opts.rate,
            "size": 100,
            "warmup": 5,
            "server_pids": target["pids"],
            "open_timeout": 60 + n / 50,
            "drain_timeout": 30.0,
            "concurrency": 200,
            "profile": {"output": str(folded), "rate": args.rate_hz, "native": args.native},
        }
        outcome = fanout.run_client(spec, 200 + n / 50 + 2 * opts.messages / opts.rate)
    if not folded.exists():
        raise SystemExit(f"py-spy wrote nothing: {outcome.get('profile') or outcome}")
    result = {
        "command": "python " + " ".join(sys.argv),
        "machine": machine(ROOT),
        "load_before": load,
        "bench": {k: v for k, v in outcome.items() if k != "per_event_ms"},
        "profile": top_entries(parse_folded(folded)),
    }
    out = RESULTS / f"fanout-profile-{n}{args.suffix}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    lat = outcome.get("latency_ms", {})
    print(
        f"N={n}: p50 {lat.get('p50')} p99 {lat.get('p99')} ms, "
        f"cpu {outcome.get('server_cpu_percent')} %"
    )
    prof = result["profile"]
    for entry in prof["categories"]:
        print(f"{entry['busy_percent']:5.1f} %  {entry['category']}")
    print(
        f"samples {prof['samples']}, busy {prof['busy_samples']} ({prof['busy_percent_of_wall']} %)"
    )
    for kind in ("self", "cumulative"):
        print(f"-- {kind}")
        for entry in [e for e in prof[kind] if e["busy_percent"] < 99.5][:25]:
            print(f"{entry['busy_percent']:5.1f} %  {entry['frame']}")
    print(f"wrote {out} and {folded}")


# -- in-process harness ----------------------------------------------------------------------------
def engine_attr(name: str) -> tuple[Any, str]:
    """(module, attribute name) of ``name`` inside ``mianzhang._responses`` (module or
    package) or ``mianzhang._turns``."""
    candidates = ["mianzhang._responses", "mianzhang._turns"]
    package = importlib.import_module("mianzhang._responses")
    if hasattr(package, "__path__"):
        candidates += [
            f"mianzhang._responses.{m.name}" for m in pkgutil.iter_modules(package.__path__)
        ]
    for module_name in candidates:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        if name in vars(module):
            return module, name
    raise LookupError(name)


class Harness:
    """The app under trace: ``channel`` (``create_app``'s channel routes, memory log),
    ``stream`` (``create_app``'s ``GET /v1/streams/{id}`` on the channel's stream, which holds
    one event: what the fan-out bench's ``mz-stream`` peer reads) or ``log``
    (``bench/_fanout_apps.py``'s ``mz-log``: a bare log stream, no FastAPI)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind in ("channel", "stream"):
            from mianzhang.server import create_app, load_settings
            from mianzhang.server._http_protocol import guarded_protocol

            settings = load_settings(stream_ping=15.0, max_connections=30_000, web=False)
            self.app = create_app(settings)
            self.http: Any = guarded_protocol(settings)  # what `mianzhang serve` runs
            self.subscribe = "/v1/channels/fanout/events?history=false"
            self.publish = "/v1/channels/fanout/publish"
            if kind == "stream":
                self.subscribe = "/v1/streams/channel:fanout"
        else:
            os.environ["MZ_FANOUT_PING"] = "15"
            from bench import _fanout_apps

            self.app = _fanout_apps.mz_log_app() if kind == "log" else _fanout_apps.raw_app()
            self.subscribe, self.publish = "/sub", "/pub"
            self.http = "httptools"

    async def prepare(self, port: int) -> None:
        """``stream``: publish the one event that makes the stream exist."""
        if self.kind != "stream":
            return
        import httpx

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            answer = await client.post(self.publish, json={"data": "first"})
            answer.raise_for_status()

    async def live_streams(self) -> int:
        if self.kind in ("channel", "stream"):
            return int(self.app.state.services.supervisor.stats.active)
        if self.kind == "raw":
            return len(self.app.subscribers)
        return int(await self.app.state.log.readers("fanout"))


async def serve_in_process(
    app: Any, port: int, http: Any = "httptools"
) -> tuple[Any, asyncio.Task[None]]:
    import uvicorn

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="none",
        http=http,
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    return server, task


Result = dict[str, Any]


def served(
    body: Callable[[argparse.Namespace, Harness, int], Awaitable[Result]],
) -> Callable[[argparse.Namespace], Awaitable[Result]]:
    """``body(args, harness, port)`` against ``args.app``'s harness served by uvicorn in this
    process on a free port; the server is stopped (at most 30 s) after it, however it ends."""

    async def main(args: argparse.Namespace) -> Result:
        harness = Harness(args.app)
        port = fanout.free_port()
        server, task = await serve_in_process(harness.app, port, harness.http)
        try:
            await harness.prepare(port)
            return await body(args, harness, port)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 30)

    return main


async def client_process(spec: dict[str, Any], cap: float) -> dict[str, Any]:
    """The fan-out client as a child process on the client CPU, awaited without blocking
    this loop."""
    pin = (lambda: os.sched_setaffinity(0, {fanout.CLIENT_CPU})) if fanout.can_pin() else None
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench._fanout_client",
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=pin,
    )
    try:
        async with asyncio.timeout(cap):
            out, err = await proc.communicate(json.dumps(spec).encode())
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(err.decode(errors="replace")[-2000:])
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


class Tracer:
    """Timestamps (``perf_counter_ns``) and loop iterations of each event's way from the
    append to every reader's socket write. The iteration ticker runs only while an event is
    in flight (from its append until ``expected`` writes of it were seen)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.loop = asyncio.get_running_loop()
        self.tick = 0
        self.ticking = False
        self.appends: dict[int, dict[str, Any]] = {}
        self.wakes: dict[int, list[tuple[int, int, int]]] = collections.defaultdict(list)
        self.enqueues: dict[int, list[tuple[int, int, int]]] = collections.defaultdict(list)
        self.writes: dict[int, list[tuple[int, int, int]]] = collections.defaultdict(list)
        # (event in flight or -1, ns waited, iterations waited) of every fair-turn wait
        self.turn_waits: list[tuple[int, int, int]] = []
        self.turn_pending = 0
        self.turn_calls = 0
        self.gc_pauses: list[tuple[int, int, int]] = []  # (generation, start ns, ns)
        self._gc_start = 0
        self.current: int | None = None

    def _ticker(self) -> None:
        self.tick += 1
        if self.current is not None or self.turn_pending:
            self.loop.call_soon(self._ticker)
        else:
            self.ticking = False

    def ensure_ticking(self) -> None:
        if not self.ticking:
            self.ticking = True
            self.loop.call_soon(self._ticker)

    def start(self, seq: int) -> None:
        self.current = seq
        self.ensure_ticking()

    def stop_if_done(self, seq: int) -> None:
        if len(self.writes[seq]) >= self.expected and self.current == seq:
            self.current = None

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter_ns()
        if phase == "start":
            self._gc_start = now
        elif self.current is not None:
            self.gc_pauses.append((info["generation"], self._gc_start, now - self._gc_start))


def install_tracer(tracer: Tracer) -> list[tuple[Any, str, Any]]:
    """Wrap the functions along the path; returns what to restore."""
    from uvicorn.protocols.http import httptools_impl

    from mianzhang.log import memory as memory_log
    from mianzhang.log import serve as log_serve

    restore: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, wrapper: Any) -> None:
        restore.append((owner, name, getattr(owner, name)))
        setattr(owner, name, wrapper)

    original_append = memory_log.MemoryEventLog.append

    async def append(self: Any, stream: str, data: str, **kwargs: Any) -> str:
        found = re.match(r"T\d+:(\d+):", data)
        seq = int(found.group(1)) if found else -1
        if seq >= 0:
            tracer.start(seq)
            tracer.appends[seq] = {"t": time.perf_counter_ns(), "tick": tracer.tick}
        event_id = await original_append(self, stream, data, **kwargs)
        if seq >= 0:
            tracer.appends[seq]["notified_t"] = time.perf_counter_ns()
            tracer.appends[seq]["log_seq"] = int(event_id.rsplit("-", 1)[1])
        return event_id

    patch(memory_log.MemoryEventLog, "append", append)

    def stream_port() -> int:
        """The client port of the stream whose producer task is running (own-path readers:
        the task's coroutine is the producer's; -1 when unknown)."""
        task = asyncio.current_task()
        frame = task.get_coro().cr_frame if task is not None else None  # type: ignore[union-attr]
        owner = frame.f_locals.get("self") if frame is not None else None
        scope = getattr(owner, "scope", None) or {}
        client = scope.get("client") or ("", -1)
        return int(client[1])

    original_sse_bytes = log_serve.sse_bytes

    def sse_bytes(event_id: Any, name: Any, data: str) -> bytes:
        """A reader on its own path encodes the event: its wake-up and enqueue."""
        found = re.match(r"T\d+:(\d+):", data)
        if found:
            seq = int(found.group(1))
            row = (stream_port(), time.perf_counter_ns(), tracer.tick)
            tracer.wakes[seq].append(row)
            tracer.enqueues[seq].append(row)
        return original_sse_bytes(event_id, name, data)

    patch(log_serve, "sse_bytes", sse_bytes)

    sender_module, _ = engine_attr("Sender")
    sender_class = sender_module.Sender
    original_deliver = sender_class.deliver

    def deliver(self: Any, chunk: bytes, items: int) -> bool:
        """A parked reader gets the event pushed by the stream's fan-out pass."""
        port = int((self.scope.get("client") or ("", -1))[1])
        now, tick = time.perf_counter_ns(), tracer.tick
        for found in re.finditer(rb"data: T\d+:(\d+):", chunk):
            seq = int(found.group(1))
            tracer.wakes[seq].append((port, now, tick))
            tracer.enqueues[seq].append((port, now, tick))
        return bool(original_deliver(self, chunk, items))

    patch(sender_class, "deliver", deliver)

    cycle = httptools_impl.RequestResponseCycle
    original_send = cycle.send

    async def send(self: Any, message: Any) -> None:
        await original_send(self, message)
        if message.get("type") == "http.response.body":
            for found in re.finditer(rb"data: T\d+:(\d+):", message.get("body", b"")):
                seq = int(found.group(1))
                port = int((self.scope.get("client") or ("", -1))[1])
                tracer.writes[seq].append((port, time.perf_counter_ns(), tracer.tick))
                tracer.stop_if_done(seq)

    patch(cycle, "send", send)

    turns_module, _ = engine_attr("Turns")
    turns_class = turns_module.Turns
    original_take = turns_class.take

    async def take(self: Any) -> None:
        tracer.turn_calls += 1
        tracer.turn_pending += 1
        tracer.ensure_ticking()
        seq = -1 if tracer.current is None else tracer.current
        start, tick = time.perf_counter_ns(), tracer.tick
        try:
            await original_take(self)
        finally:
            tracer.turn_pending -= 1
        tracer.turn_waits.append((seq, time.perf_counter_ns() - start, tracer.tick - tick))

    patch(turns_class, "take", take)
    gc.callbacks.append(tracer.on_gc)
    return restore


def analyse_wait(tracer: Tracer, warmup: int) -> dict[str, Any]:
    """Per event: when (ms after the append) and in which loop iteration readers woke, were
    enqueued and written; then the medians over events."""
    per_event = []
    for seq, append in sorted(tracer.appends.items()):
        if seq < warmup or not tracer.writes.get(seq):
            continue
        t0, tick0 = append["t"], append["tick"]

        def rel(
            rows: list[tuple[int, int, int]], t0: int = t0, tick0: int = tick0
        ) -> tuple[list[float], list[int]]:
            rows = sorted(rows, key=lambda r: r[1])
            return [(t - t0) / 1e6 for _, t, _ in rows], [k - tick0 for _, _, k in rows]

        wake_ms, wake_it = rel(tracer.wakes[seq])
        enq_ms, enq_it = rel(tracer.enqueues[seq])
        write_ms, write_it = rel(tracer.writes[seq])
        wake_at = {port: t for port, t, _ in tracer.wakes[seq]}
        wake_rank = {
            port: i for i, (port, _, _) in enumerate(sorted(tracer.wakes[seq], key=lambda r: r[1]))
        }
        wake_to_write = [
            (t - wake_at[port]) / 1e6 for port, t, _ in tracer.writes[seq] if port in wake_at
        ]
        # order of writes vs order of wake-ups: does the k-th woken reader write k-th?
        write_rank = [
            wake_rank[port]
            for port, _, _ in sorted(tracer.writes[seq], key=lambda r: r[1])
            if port in wake_rank
        ]
        gcs = [
            (g, (start - t0) / 1e6, ns / 1e6)
            for g, start, ns in tracer.gc_pauses
            if t0 <= start <= t0 + (max(write_ms or [0]) * 1e6)
        ]
        displacement = [abs(i - rank) for i, rank in enumerate(write_rank)]

        def gap_us(ms: list[float]) -> float | None:
            """Median time between consecutive steps: the per-subscriber cost of a phase."""
            gaps = [b - a for a, b in itertools.pairwise(ms)]
            return round(statistics.median(gaps) * 1000, 1) if gaps else None

        def spread(ms: list[float]) -> list[float] | None:
            return (
                [round(ms[0], 2), round(statistics.median(ms), 2), round(ms[-1], 2)] if ms else None
            )

        per_event.append(
            {
                "seq": seq,
                "append_ms": round((append["notified_t"] - t0) / 1e6, 3),
                "readers_woken": len(wake_ms),
                "writes": len(write_ms),
                "wake_first_p50_last_ms": spread(wake_ms),
                "enqueue_first_p50_last_ms": spread(enq_ms),
                "write_first_p50_last_ms": spread(write_ms),
                "wake_iterations": sorted(collections.Counter(wake_it).items()),
                "enqueue_iterations": sorted(collections.Counter(enq_it).items()),
                "write_iterations": sorted(collections.Counter(write_it).items()),
                "wake_to_write_p50_max_ms": [
                    round(statistics.median(wake_to_write), 2),
                    round(max(wake_to_write), 2),
                ]
                if wake_to_write
                else None,
                "wake_gap_us_p50": gap_us(wake_ms),
                "write_gap_us_p50": gap_us(write_ms),
                "write_rank_displacement_mean": round(statistics.fmean(displacement), 1)
                if displacement
                else None,
                "gc_pauses": [(g, round(at, 2), round(ms, 2)) for g, at, ms in gcs],
            }
        )

    def med(key: str, index: int) -> float | None:
        values = [e[key][index] for e in per_event if e.get(key) and len(e[key]) > index]
        return round(statistics.median(values), 2) if values else None

    iterations: dict[str, collections.Counter[int]] = {}
    for key in ("wake_iterations", "enqueue_iterations", "write_iterations"):
        total: collections.Counter[int] = collections.Counter()
        for e in per_event:
            total.update(dict(e[key]))
        iterations[key] = total
    gc_all = [p for e in per_event for p in e["gc_pauses"]]
    summary_ = {
        "events": len(per_event),
        "median_append_ms": round(statistics.median(e["append_ms"] for e in per_event), 3)
        if per_event
        else None,
        "median_over_events_ms": {
            key: [med(key, 0), med(key, 1), med(key, 2)]
            for key in (
                "wake_first_p50_last_ms",
                "enqueue_first_p50_last_ms",
                "write_first_p50_last_ms",
                "wake_to_write_p50_max_ms",
            )
        },
        "per_subscriber_us_p50": {
            key: round(statistics.median(e[key] for e in per_event if e[key] is not None), 1)
            for key in ("wake_gap_us_p50", "write_gap_us_p50")
        }
        if per_event
        else None,
        "iterations_after_append_all_events": {
            key: sorted(counter.items()) for key, counter in iterations.items()
        },
        "gc_pauses_in_flight": {
            "count": len(gc_all),
            "by_generation": {
                gen: {
                    "count": sum(1 for g, _, _ in gc_all if g == gen),
                    "max_ms": max(ms for g, _, ms in gc_all if g == gen),
                }
                for gen in sorted({g for g, _, _ in gc_all})
            },
            "max_ms": max((ms for _, _, ms in gc_all), default=0),
            "total_ms": round(sum(ms for _, _, ms in gc_all), 2),
        },
    }
    return {
        "summary": summary_,
        "events": per_event,
        "turns": turn_summary(tracer),
    }


def turn_summary(tracer: Tracer) -> dict[str, Any]:
    """Fair-turn waits by the event in flight when they began (-1: none)."""
    by_event: dict[int, list[tuple[int, int]]] = collections.defaultdict(list)
    for seq, ns, iterations in tracer.turn_waits:
        by_event[seq].append((ns, iterations))
    out: dict[str, Any] = {"calls": tracer.turn_calls}
    for seq, waits in sorted(by_event.items()):
        its = sorted(it for _, it in waits)
        out[f"event {seq}"] = {
            "waits": len(waits),
            "waited_iterations_p50_max": [its[len(its) // 2], its[-1]],
            "waited_ms_p50_max": [
                round(statistics.median(ns for ns, _ in waits) / 1e6, 3),
                round(max(ns for ns, _ in waits) / 1e6, 3),
            ],
        }
    return out


@served
async def wait_main(args: argparse.Namespace, harness: Harness, port: int) -> dict[str, Any]:
    n = args.subscribers
    tracer = Tracer(n)
    restore = install_tracer(tracer)
    try:
        spec = {
            "mode": "fanout",
            "subscribers": [{"port": port, "path": harness.subscribe, "count": n}],
            "publish": {"port": port, "path": harness.publish},
            "messages": args.messages,
            "rate": args.rate,
            "size": 100,
            "warmup": 5,
            "server_pids": [os.getpid()],
            "open_timeout": 60 + n / 50,
            "drain_timeout": 30.0,
            "concurrency": 200,
        }
        outcome = await client_process(spec, 200 + n / 50 + 2 * args.messages / args.rate)
    finally:
        for owner, name, original in reversed(restore):
            setattr(owner, name, original)
        gc.callbacks.remove(tracer.on_gc)
    return {
        "bench": {k: v for k, v in outcome.items() if k != "per_event_ms"},
        "trace": analyse_wait(tracer, 5),
    }


# -- memory ------------------------------------------------------------------------------------
def census() -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        name = f"{kind.__module__}.{kind.__qualname__}"
        if kind.__name__ in ("coroutine", "async_generator", "generator", "frame"):
            code = (
                getattr(obj, "cr_code", None)
                or getattr(obj, "ag_code", None)
                or getattr(obj, "gi_code", None)
            )
            if code is not None:
                name += f"[{code.co_qualname}]"
        counts[name] += 1
    return counts


@served
async def memory_main(args: argparse.Namespace, harness: Harness, port: int) -> dict[str, Any]:
    n = args.subscribers
    path = harness.subscribe
    try:
        warm = {"mode": "idle", "subscribers": [{"port": port, "path": path, "count": 10}],
                "levels": [10], "ping": 15.0, "server_pids": [os.getpid()], "settle": 0.5,
                "hold": 0.5, "open_timeout": 60, "concurrency": 10}  # fmt: skip
        await client_process(warm, 120)
        await asyncio.sleep(1.0)
        gc.collect()
        tracemalloc.start(args.frames)
        before = tracemalloc.take_snapshot()
        objects_before = census()
        spec = {
            **warm,
            "subscribers": [{"port": port, "path": path, "count": n}],
            "levels": [n],
            "settle": 1.0,
            "hold": args.hold,
            "open_timeout": 60 + n / 50,
            "concurrency": 200,
        }
        client = asyncio.create_task(client_process(spec, 120 + n / 50 + args.hold))
        async with asyncio.timeout(60 + n / 50):
            while await harness.live_streams() < n:  # noqa: ASYNC110 - polling a count
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)
        after = tracemalloc.take_snapshot()
        objects_after = census()
        await client
    finally:
        tracemalloc.stop()
    return memory_report(before, after, objects_before, objects_after, n)


def memory_report(
    before: tracemalloc.Snapshot,
    after: tracemalloc.Snapshot,
    objects_before: collections.Counter[str],
    objects_after: collections.Counter[str],
    n: int,
) -> dict[str, Any]:
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    after, before = after.filter_traces(ignore), before.filter_traces(ignore)
    by_line = after.compare_to(before, "lineno")
    total = sum(d.size_diff for d in by_line)
    lines = [
        {
            "site": f"{_site(d.traceback[0].filename)}:{d.traceback[0].lineno}",
            "bytes_per_stream": round(d.size_diff / n, 1),
            "blocks_per_stream": round(d.count_diff / n, 2),
        }
        for d in by_line[:40]
        if d.size_diff / n >= 8
    ]
    by_file = after.compare_to(before, "filename")
    files = [
        {"file": _site(d.traceback[0].filename), "bytes_per_stream": round(d.size_diff / n, 1)}
        for d in by_file[:25]
        if d.size_diff / n >= 8
    ]
    delta = objects_after - objects_before
    objects = [
        {"type": name, "per_stream": round(count / n, 2)}
        for name, count in delta.most_common(60)
        if count / n >= 0.5
    ]
    return {
        "streams": n,
        "traced_bytes_per_stream": round(total / n, 1),
        "by_file": files,
        "by_line": lines,
        "gc_objects_per_stream": objects,
    }


def _site(filename: str) -> str:
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# -- cost: CPU per delivery without sockets ------------------------------------------------------
class FakeConnections:
    """N subscribers driven in-process: each is the app called with a GET scope, a ``receive``
    that waits until the end, and a ``send`` that counts events (no sockets, no uvicorn)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.heads = 0
        self.delivered = 0
        self.target = 0
        self.done: asyncio.Future[None] | None = None
        self.gone = asyncio.get_running_loop().create_future()

    async def receive(self) -> dict[str, Any]:
        await asyncio.shield(self.gone)
        return {"type": "http.disconnect"}

    def make_send(self) -> Any:
        """A ``send`` of its own for one subscriber (peers keep them in sets)."""

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.heads += 1
            elif b"data: " in message.get("body", b""):
                self.delivered += message["body"].count(b"data: ")
                done = self.done
                if self.delivered >= self.target and done is not None and not done.done():
                    done.set_result(None)

        return send


async def call_publish(app: Any, path: str, body: bytes, state: dict[str, Any]) -> None:
    from tests._support.asgi import http_scope

    scope = http_scope(
        "POST", path, headers=[("content-type", "text/plain")], state=dict(state),
        client=("127.0.0.1", 9),
    )  # fmt: skip
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 300:
            raise RuntimeError(f"publish answered {message['status']}")

    await app(scope, receive, send)


def cost_app(kind: str) -> tuple[Any, str, str]:
    """(app, subscribe path with query, publish path)."""
    os.environ["MZ_FANOUT_PING"] = "15"
    from bench import _fanout_apps as apps

    if kind == "raw":
        return apps.raw_app(), "/sub", "/pub"
    if kind == "mz-queue":
        return apps.mz_queue_app(), "/sub", "/pub"
    if kind == "streaming":
        return apps.streaming_app(), "/sub", "/pub"
    if kind == "mz-log":
        return apps.mz_log_app(), "/sub", "/pub"
    harness = Harness("channel")
    return harness.app, harness.subscribe, harness.publish


async def cost_one(kind: str, n: int, events: int, gc_mode: str) -> dict[str, Any]:
    from tests._support.asgi import http_scope

    app, sub_path, pub_path = cost_app(kind)
    path, _, query = sub_path.partition("?")
    lifespan = (
        app.router.lifespan_context(app) if kind == "mz-channel" else contextlib.nullcontext({})
    )
    captured: list[Any] = []
    stream_base = engine_attr("_StreamingBase")[0]._StreamingBase
    original_call = stream_base.__call__

    def capture(self: Any, scope: Any, receive: Any, send: Any) -> Any:
        captured.append(send)  # the send the engine gets: through the route's middleware
        return original_call(self, scope, receive, send)

    stream_base.__call__ = capture
    async with lifespan as state:
        state = dict(state or {})
        conns = FakeConnections(n)
        tasks = [
            asyncio.create_task(
                app(
                    http_scope(
                        "GET",
                        path,
                        query_string=query.encode(),
                        state=dict(state),
                        client=("127.0.0.1", 10_000 + i),
                    ),
                    conns.receive,
                    conns.make_send(),
                )
            )
            for i in range(n)
        ]
        try:
            async with asyncio.timeout(60):
                while conns.heads < n:  # noqa: ASYNC110 - polling a count
                    await asyncio.sleep(0.05)
            if (
                gc_mode == "freeze"
            ):  # the subscribers' long-lived objects out of the collector's way
                gc.collect()
                gc.freeze()
            elif gc_mode == "off":
                gc.disable()
            elif gc_mode == "threshold":  # young collections rarer: transients die before them
                gc.collect()
                gc.freeze()
                gc.set_threshold(50_000, 20, 10)
            try:
                result = await cost_events(app, pub_path, state, conns, events)
            finally:
                gc.enable()
                gc.unfreeze()
                gc.set_threshold(700, 10, 10)
            if captured:
                result["direct_send_through_route_us"] = await cost_direct(captured, conns)
        finally:
            stream_base.__call__ = original_call
            conns.gone.set_result(None)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return result


async def cost_events(
    app: Any, pub_path: str, state: dict[str, Any], conns: FakeConnections, events: int
) -> dict[str, Any]:
    """CPU (thread time) from a publish until every subscriber's ``send`` got the event,
    per delivery; and the share spent in the first and the second loop iteration after the
    publish's own (ticker callbacks stamp each iteration)."""
    loop = asyncio.get_running_loop()
    per_delivery, phases, ordered = [], [], []
    gc_before = [g["collections"] for g in gc.get_stats()]
    for seq in range(events + 3):  # 3 warm-up events
        conns.done = loop.create_future()
        conns.target = conns.delivered + conns.n
        stamps: list[float] = []
        running = [True]

        def tick(stamps: list[float] = stamps, running: list[bool] = running) -> None:
            stamps.append(time.thread_time())
            if running[0]:
                loop.call_soon(tick)

        t0 = time.thread_time()
        loop.call_soon(tick)
        await call_publish(
            app, pub_path, f"T{time.time_ns()}:{seq}:".encode().ljust(100, b"x"), state
        )
        await conns.done
        running[0] = False
        t1 = time.thread_time()
        if seq >= 3:
            per_delivery.append((t1 - t0) / conns.n * 1e6)
            steps = [b - a for a, b in itertools.pairwise([t0, *stamps, t1])]
            phases.append(sorted(steps, reverse=True)[:3])
            ordered.append([x for x in steps if x > 0.2 * max(steps)])
        await asyncio.sleep(0.01)
    gc_after = [g["collections"] for g in gc.get_stats()]
    big = [[round(x / conns.n * 1e6, 2) for x in p] for p in phases]
    return {
        "cpu_us_per_delivery_p50": round(statistics.median(per_delivery), 2),
        "cpu_us_per_delivery_min": round(min(per_delivery), 2),
        # the two busiest loop iterations (CPU per subscriber): the readers' wake-up and the
        # senders' turn when they are two (mianzhang), the whole fan-out when it is one (raw)
        "largest_iterations_us_per_subscriber_p50": [
            round(statistics.median(p[i] for p in big), 2)
            for i in range(2)
            if all(len(p) > i for p in big)
        ],
        "gc_collections": [b - a for a, b in zip(gc_before, gc_after, strict=True)],
        # the loop iterations of one event that took over a fifth of the largest, in order
        # (CPU µs per subscriber): publish step first, then the readers', then the senders'
        "big_iterations_in_order_us_per_subscriber": [
            round(x / conns.n * 1e6, 2) for x in ordered[len(ordered) // 2]
        ],
    }


async def cost_direct(sends: list[Any], conns: FakeConnections) -> float:
    """CPU per delivery of calling each stream's own ``send`` (the route's middleware chain
    down to the server) in one loop with one pre-built message: what a shared fan-out that
    writes caught-up readers directly would still pay on this route."""
    message = {"type": "http.response.body", "body": b"data: x\n\n", "more_body": True}
    samples = []
    for _ in range(5):
        t0 = time.thread_time()
        for send in sends:
            await send(message)
        samples.append((time.thread_time() - t0) / len(sends) * 1e6)
    return round(statistics.median(samples), 2)


class _NoTimeoutAsyncio:
    """``asyncio`` for the engine's module with ``timeout()`` a no-op: what dropping the
    per-send timeout would save (a measurement variant; nothing in ``src/`` changes)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    def timeout(delay: float | None) -> Any:
        if sys._getframe(1).f_code.co_name in ("_send_body", "_wait_sent"):  # the send's
            return contextlib.nullcontext()
        return asyncio.timeout(delay)


@contextlib.contextmanager
def variant(name: str) -> Any:
    if name == "no-send-timeout":
        module = engine_attr("Sender")[0]
        saved = module.asyncio
        module.asyncio = _NoTimeoutAsyncio()
        try:
            yield
        finally:
            module.asyncio = saved
    else:
        yield


async def cost_main(args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    with variant(args.variant):
        for kind in args.apps:
            out[kind] = await cost_one(kind, args.subscribers, args.messages, args.gc)
            print(kind, out[kind], flush=True)
    return {
        "apps": out,
        "subscribers": args.subscribers,
        "events": args.messages,
        "gc": args.gc,
        "variant": args.variant,
    }


def run_in_process(main: Any, args: argparse.Namespace, name: str) -> None:
    import uvloop

    load = [round(x, 2) for x in os.getloadavg()]
    fanout.raise_nofile()  # the in-process server holds every connection
    if fanout.can_pin():
        os.sched_setaffinity(0, {fanout.SERVER_CPU})
    result = uvloop.run(main(args))
    result = {
        "command": "python " + " ".join(sys.argv),
        "machine": machine(ROOT),
        "load_before": load,
        **result,
    }
    out = RESULTS / f"fanout-{name}-{args.subscribers}{args.suffix}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1)[:6000])
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("what", choices=("profile", "wait", "memory", "cost"))
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--peer", default="mz-channel", choices=fanout.PEERS, help="profile only")
    parser.add_argument("--rate-hz", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument("--frames", type=int, default=1, help="tracemalloc frames")
    parser.add_argument("--hold", type=float, default=5.0, help="memory: seconds held idle")
    parser.add_argument(
        "--app",
        choices=("channel", "stream", "log", "raw"),
        default="channel",
        help="wait (not raw), memory",
    )
    parser.add_argument(
        "--apps",
        nargs="*",
        default=["raw", "streaming", "mz-queue", "mz-log", "mz-channel"],
        choices=("raw", "streaming", "mz-queue", "mz-log", "mz-channel"),
        help="cost: the apps measured",
    )
    parser.add_argument(
        "--gc",
        choices=("default", "freeze", "threshold", "off"),
        default="default",
        help="cost: the collector while measuring (freeze: gc.freeze() once subscribed; "
        "threshold: that and gc.set_threshold(50_000, 20, 10))",
    )
    parser.add_argument(
        "--variant",
        choices=("none", "no-send-timeout"),
        default="none",
        help="cost: a patched engine (no-send-timeout: asyncio.timeout in the engine a no-op)",
    )
    parser.add_argument("--suffix", default="", help="appended to the result file names")
    args = parser.parse_args()
    if not (0 < args.subscribers <= 15_000 and 0 < args.messages <= 1_000 and args.rate <= 100):
        parser.error("keep it bounded")
    if args.what == "profile":
        run_profile(args)
    elif args.what == "wait":
        run_in_process(wait_main, args, "wait")
    elif args.what == "cost":
        run_in_process(cost_main, args, "cost")
    else:
        run_in_process(memory_main, args, "memory")


if __name__ == "__main__":
    main()
