"""LLM gateway benchmark: mianzhang vs calling the upstream directly vs LiteLLM's proxy.

All targets stream from the SAME fake OpenAI-compatible upstream
(``tests/e2e/apps/fake_upstream.py``, uvicorn + uvloop + httptools, no recording), on
loopback only, each server with one worker process:

* ``direct``  — the client talks to the upstream itself (the baseline);
* ``mianzhang`` — ``POST /v1/chat/completions`` through mianzhang's ``openai`` provider;
* ``mianzhang-messages`` — ``POST /v1/messages`` (Anthropic Messages API) on the same
  mianzhang process: the same upstream chunks, translated and read in the ``anthropic``
  surface;
* ``litellm`` — ``POST /v1/chat/completions`` through ``litellm --config`` (LiteLLM proxy,
  installed in a separate venv, see ``--litellm``);
* ``litellm-messages`` — LiteLLM's ``POST /v1/messages`` on the same LiteLLM process.

``--apis chat`` (or ``messages``) measures one API only. The first content token is the first
non-empty ``content`` delta (chat) or ``text_delta`` (Messages).

Measured:

1. Time to first token (TTFT) of sequential requests, in blocks of 25 rotating over the targets
   so drift hits all equally: p50 / p99 per target and the overhead over ``direct``. While one
   target is measured the other gateway is paused (SIGSTOP/SIGCONT), so neither's idle work
   (LiteLLM runs background loops) takes the measured one's CPU on a small machine.
2. Throughput at 100 and 500 concurrent streams: each worker holds one keep-alive connection
   and streams requests back to back; tokens/s and streams/s over the whole run (with
   ``--rounds N``, N runs per target interleaved in rotating order, the median reported).

Bounded: a fixed number of requests per phase and a wall-clock cap per phase (``--phase-cap``);
every process is started here and stopped in ``finally``. Results: ``bench/results/``.

With ``--baseline-src DIR`` a second mianzhang gateway runs from another source tree (for
example a checkout of an earlier commit) as the target ``baseline``, measured in the same
rotation: before/after comparisons on a shared machine see the same drift.

Usage::

    python bench/llm_gateway.py                       # full run (a few minutes)
    python bench/llm_gateway.py --quick               # smoke run
    python bench/llm_gateway.py --litellm none        # without LiteLLM
    python bench/llm_gateway.py --litellm none --baseline-src /tmp/old   # before vs after
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests._support.procs import (  # noqa: E402
    free_port,
    stop_process,
    uvicorn_command,
    wait_for_port,
)

from _sse_http import Connection, StreamResult  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BLOCK = 25  # TTFT requests in a row per target before rotating
LITELLM_KEY = "sk-bench-master-key-0123456789abcdef"


@dataclass
class Target:
    name: str
    port: int
    path: str
    model: str
    headers: dict[str, str]
    pid: int | None = None  # the gateway process (None: the upstream itself)

    @property
    def body(self) -> dict[str, object]:
        """The request: a chat completion, or a Messages request on ``/v1/messages``."""
        if self.path.endswith("/messages"):
            return {**body(self.model), "max_tokens": 4096}
        return body(self.model)


def only(target: Target, targets: list[Target]) -> None:
    """Pause every other gateway (SIGSTOP) and wake this one: on a 2-core machine an idle
    gateway's background work (LiteLLM's) would otherwise steal the measured one's CPU."""
    for other in targets:  # two targets may be two APIs of one process
        if other.pid is not None and other.pid != target.pid:
            os.kill(other.pid, signal.SIGSTOP)
    if target.pid is not None:
        os.kill(target.pid, signal.SIGCONT)


def wake_all(targets: list[Target]) -> None:
    for t in targets:
        if t.pid is not None:
            os.kill(t.pid, signal.SIGCONT)


@contextlib.contextmanager
def process(
    cmd: list[str],
    env: dict[str, str],
    port: int,
    log: Path,
    cwd: Path = ROOT,
    ready_timeout: float = 90.0,
) -> Iterator[subprocess.Popen[bytes]]:
    path = os.pathsep.join(
        filter(None, [str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH")])
    )
    full_env = {**os.environ, "PYTHONPATH": path, **env}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, proc, timeout=ready_timeout)
            yield proc
        finally:
            stop_process(proc, signal.SIGTERM, timeout=10)


def uvicorn_cmd(app: str, port: int, *, factory: bool = False) -> list[str]:
    args = ("--loop", "uvloop", "--http", "httptools", "--backlog", "4096")
    return uvicorn_command(app, port, factory=factory, args=args)


def body(model: str) -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "benchmark prompt"}],
        "stream": True,
    }


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def ttft_phase(
    targets: list[Target], requests: int, warmup: int, cap: float
) -> dict[str, list[float]]:
    conns = {t.name: Connection("127.0.0.1", t.port) for t in targets}
    samples: dict[str, list[float]] = {t.name: [] for t in targets}
    deadline = time.monotonic() + cap
    try:
        # Blocks of BLOCK back-to-back requests per target, rotating: drift still hits every
        # target alike, and no target is measured just after sitting idle while the others ran
        # (a process woken from idle on a small VM adds up to a millisecond per hop).
        done = 0
        while done < warmup + requests:
            if time.monotonic() > deadline:
                break
            block = min(BLOCK, warmup + requests - done)
            for t in targets:
                only(t, targets)
                for i in range(done, done + block):
                    r = await conns[t.name].stream_chat(t.path, t.body, t.headers)
                    if r.status != 200 or r.ttft is None or not r.done:
                        raise RuntimeError(f"{t.name}: bad stream {r}")
                    if i >= warmup:
                        samples[t.name].append(r.ttft * 1000)
            done += block
    finally:
        wake_all(targets)
        for c in conns.values():
            await c.close()
    return samples


async def throughput_phase(
    t: Target, concurrency: int, streams: int, cap: float
) -> dict[str, float]:
    remaining = streams
    results: list[StreamResult] = []
    errors = 0
    deadline = time.monotonic() + cap

    async def worker() -> None:
        nonlocal remaining, errors
        conn = Connection("127.0.0.1", t.port)
        try:
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                try:
                    r = await conn.stream_chat(t.path, t.body, t.headers)
                except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    await conn.close()
                    continue
                if r.status == 200 and r.done:
                    results.append(r)
                else:
                    errors += 1
        finally:
            await conn.close()

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), cap + 30)
    wall = time.perf_counter() - start
    tokens = sum(r.tokens for r in results)
    ttfts = [r.ttft * 1000 for r in results if r.ttft is not None]
    return {
        "concurrency": concurrency,
        "streams_ok": len(results),
        "errors": errors,
        "wall_s": round(wall, 3),
        "streams_per_s": round(len(results) / wall, 1),
        "tokens_per_s": round(tokens / wall, 1),
        "ttft_p50_ms": round(pct(ttfts, 0.5), 2) if ttfts else None,
        "ttft_p99_ms": round(pct(ttfts, 0.99), 2) if ttfts else None,
    }


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median streams/s (all its figures), and how many rounds there were."""
    ordered = sorted(runs, key=lambda r: r["streams_per_s"])
    return {**ordered[len(ordered) // 2], "rounds": len(runs)}


def litellm_config(path: Path, upstream_port: int) -> None:
    path.write_text(
        "model_list:\n"
        "  - model_name: fake\n"
        "    litellm_params:\n"
        "      model: openai/fake\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
        "      api_key: sk-fake\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
        # /v1/messages on an openai model: chat completions (the default would call the
        # upstream's Responses API, which the fake upstream, like most servers, has not)
        "  use_chat_completions_url_for_anthropic_messages: true\n"
        "  telemetry: false\n"
        "general_settings:\n"
        "  disable_spend_logs: true\n"
    )


API_PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages"}


def api_targets(
    name: str, port: int, headers: dict[str, str], pid: int, apis: list[str]
) -> list[Target]:
    """One target per API of one gateway process (``name``, ``name-messages``)."""
    return [
        Target(
            name if api == "chat" else f"{name}-{api}", port, API_PATHS[api], "fake", headers, pid
        )
        for api in apis
    ]


def gateway_env(upstream_port: int) -> dict[str, str]:
    models = {"fake": {"provider": "openai", "upstream": "fake"}}
    upstreams = {"fake": {"base_url": f"http://127.0.0.1:{upstream_port}/v1"}}
    return {
        "MIANZHANG_LLM__MODELS": json.dumps(models),
        "MIANZHANG_LLM__UPSTREAMS": json.dumps(upstreams),
        "MIANZHANG_LLM__DEFAULT_MODEL": "fake",
        "MIANZHANG_FILES__ENABLED": "false",
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="mz-bench-llm-"))
    up_port, gw_port, ll_port = free_port(), free_port(), free_port()
    upstream_env = {
        "FAKE_RECORD": "0",
        "FAKE_TOKENS": str(args.tokens),
        "FAKE_TTFT": "0",
        "FAKE_TOKEN_DELAY": "0",
    }
    results: dict[str, object] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "tokens_per_stream": args.tokens,
    }
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            process(
                uvicorn_cmd("tests.e2e.apps.fake_upstream:app", up_port),
                upstream_env,
                up_port,
                tmp / "upstream.log",
            )
        )
        targets = [Target("direct", up_port, "/v1/chat/completions", "fake", {})]
        gateway = stack.enter_context(
            process(
                uvicorn_cmd(args.gateway_app, gw_port, factory=True),
                gateway_env(up_port),
                gw_port,
                tmp / "mianzhang.log",
            )
        )
        targets += api_targets("mianzhang", gw_port, {}, gateway.pid, args.apis)
        if args.baseline_src is not None:
            base_port = free_port()
            src = args.baseline_src
            baseline = stack.enter_context(
                process(
                    uvicorn_cmd(args.gateway_app, base_port, factory=True),
                    {**gateway_env(up_port), "PYTHONPATH": f"{src / 'src'}{os.pathsep}{src}"},
                    base_port,
                    tmp / "baseline.log",
                    cwd=src,
                )
            )
            targets.append(
                Target("baseline", base_port, "/v1/chat/completions", "fake", {}, baseline.pid)
            )
        if args.litellm != "none":
            cfg = tmp / "litellm.yaml"
            litellm_config(cfg, up_port)
            env = {
                "LITELLM_MASTER_KEY": LITELLM_KEY,
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_TELEMETRY": "False",
                "PYTHONPATH": "",
            }
            litellm = stack.enter_context(
                process(
                    [
                        args.litellm,
                        "--config",
                        str(cfg),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(ll_port),
                        "--num_workers",
                        "1",
                    ],
                    env,
                    ll_port,
                    tmp / "litellm.log",
                    cwd=tmp,
                    ready_timeout=180,
                )
            )
            auth = {"authorization": f"Bearer {LITELLM_KEY}"}
            added = api_targets("litellm", ll_port, auth, litellm.pid, args.apis)
            targets += added
            # LiteLLM answers its port before its router is ready: wait for a good stream
            for target in added:
                await wait_stream(target, 120)
        samples = await ttft_phase(targets, args.ttft_requests, args.warmup, args.phase_cap)
        base = samples["direct"]
        ttft: dict[str, dict[str, float]] = {}
        for name, values in samples.items():
            ttft[name] = {
                "n": len(values),
                "p50_ms": round(pct(values, 0.5), 3),
                "p99_ms": round(pct(values, 0.99), 3),
                "mean_ms": round(statistics.fmean(values), 3),
                "overhead_p50_ms": round(pct(values, 0.5) - pct(base, 0.5), 3),
                "overhead_p99_ms": round(pct(values, 0.99) - pct(base, 0.99), 3),
            }
        results["ttft"] = ttft
        print(json.dumps(ttft, indent=2), flush=True)
        throughput: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
        for level in args.levels:
            rounds: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
            for r in range(args.rounds):  # targets in rotating order, round after round
                for t in targets[r % len(targets) :] + targets[: r % len(targets)]:
                    only(t, targets)
                    try:
                        res = await throughput_phase(
                            t, level, level * args.streams_factor, args.phase_cap
                        )
                    finally:
                        wake_all(targets)
                    rounds[t.name].append(res)
                    print(t.name, json.dumps(res), flush=True)
            for name, runs in rounds.items():
                throughput[name].append(median_run(runs))
        results["throughput"] = throughput
    return results


async def wait_stream(t: Target, limit: float) -> None:
    deadline = time.monotonic() + limit
    while True:
        conn = Connection("127.0.0.1", t.port)
        try:
            r = await conn.stream_chat(t.path, t.body, t.headers)
            if r.status == 200 and r.done:
                return
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            await conn.close()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{t.name} never streamed")
        await asyncio.sleep(0.5)


def markdown(results: dict[str, object]) -> str:
    ttft = results["ttft"]
    assert isinstance(ttft, dict)
    lines = [
        "# LLM gateway benchmark",
        "",
        f"Machine: {results['machine']}; tokens per stream: {results['tokens_per_stream']}",
        "",
        "## Time to first token (sequential, loopback)",
        "",
        "| target | n | p50 ms | p99 ms | overhead p50 ms | overhead p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in ttft.items():
        lines.append(
            f"| {name} | {v['n']} | {v['p50_ms']} | {v['p99_ms']} | "
            f"{v['overhead_p50_ms']} | {v['overhead_p99_ms']} |"
        )
    lines += [
        "",
        "## Throughput (concurrent streams, back to back)",
        "",
        "| target | concurrency | streams ok | errors | streams/s | tokens/s "
        "| TTFT p50 ms | TTFT p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    throughput = results["throughput"]
    assert isinstance(throughput, dict)
    for name, rows in throughput.items():
        for r in rows:
            lines.append(
                f"| {name} | {r['concurrency']} | {r['streams_ok']} | {r['errors']} | "
                f"{r['streams_per_s']} | {r['tokens_per_s']} | {r['ttft_p50_ms']} | "
                f"{r['ttft_p99_ms']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ttft-requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument(
        "--levels",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[100, 500],
        help="concurrency levels of the throughput phase ('' to skip it)",
    )
    parser.add_argument(
        "--apis",
        type=lambda s: [x for x in s.split(",") if x],
        default=["chat", "messages"],
        help="APIs measured on each gateway: chat, messages (default both)",
    )
    parser.add_argument(
        "--streams-factor", type=int, default=6, help="streams per level = factor x concurrency"
    )
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="throughput runs per target and level, interleaved; the median is reported",
    )
    parser.add_argument("--phase-cap", type=float, default=120.0, help="seconds per phase, max")
    parser.add_argument(
        "--litellm",
        default="auto",
        help="path of the litellm CLI, 'auto' (a venv in bench/.venv-litellm, created with"
        " pip on first use) or 'none'",
    )
    parser.add_argument(
        "--gateway-app",
        default="mianzhang.server:create_app",
        help="app factory of the mianzhang server",
    )
    parser.add_argument(
        "--baseline-src",
        default=None,
        help="source tree of a second mianzhang gateway measured as 'baseline'",
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "llm_gateway.json")
    args = parser.parse_args()
    if args.baseline_src is not None:
        args.baseline_src = Path(args.baseline_src).resolve()
    if args.litellm == "auto":
        args.litellm = ensure_litellm()
    if args.quick:
        args.ttft_requests, args.warmup, args.levels, args.streams_factor = 50, 10, [20], 2
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    results = runner(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


def ensure_litellm() -> str:
    """LiteLLM's proxy in its own venv (its pins must not touch ours), made on first use."""
    venv = ROOT / "bench" / ".venv-litellm"
    cli = venv / "bin" / "litellm"
    if not cli.exists():
        print(f"installing LiteLLM's proxy into {venv} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "litellm[proxy]"], check=True)
    return str(cli)


if __name__ == "__main__":
    main()
