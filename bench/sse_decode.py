"""Micro-benchmark of the SSE wire format (``mianzhang._sse``): decoder and encoder, no I/O.

Scenarios (each run ``--repeat`` times; best and median wall time reported):

* ``decode 8 MiB line / 1 chunk``: one event whose single ``data:`` line is 8 MiB, fed as one
  chunk. Naive parsers that re-scan their buffer are quadratic here and take seconds;
* ``decode 8 MiB line / 64 KiB``: the same bytes fed in 64 KiB chunks (what a socket gives);
* ``decode 100k small events``: 100,000 events of ~70 bytes (id, event, JSON data) in 64 KiB
  chunks;
* ``encode 200k events``: ``ServerSentEvent(data, event=, id=).encode()`` 200,000 times, and for
  comparison the ``encode_data`` fast path, ``JSONServerSentEvent(dict)`` and sse-starlette's
  ``ServerSentEvent`` (if installed) on the same inputs.

Every run checks its result (event count and sizes) so a fast wrong answer cannot pass.
Bounded: fixed sizes, single process, a few seconds in total. Results: ``bench/results/
sse_decode.json``.

Usage::

    python bench/sse_decode.py              # 5 repeats
    python bench/sse_decode.py --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mianzhang import JSONServerSentEvent, ServerSentEvent, SSEDecoder
from mianzhang._sse import encode_data

RESULTS = Path(__file__).parent / "results" / "sse_decode.json"
MIB = 1 << 20
CHUNK = 64 * 1024
BIG = 8 * MIB
SMALL_EVENTS = 100_000
ENCODE_EVENTS = 200_000


def _time(fn: Callable[[], object], repeat: int) -> list[float]:
    runs = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return runs


def _chunks(raw: bytes, size: int) -> list[bytes]:
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def _decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.decode(chunk))
    decoder.close()
    return events


def bench_big_line(repeat: int) -> list[dict[str, Any]]:
    raw = b"data: " + b"x" * BIG + b"\n\n"
    out = []
    for label, chunks in [("1 chunk", [raw]), ("64 KiB chunks", _chunks(raw, CHUNK))]:

        def run(chunks: list[bytes] = chunks) -> None:
            (event,) = _decode(chunks)
            assert len(event.data) == BIG

        runs = _time(run, repeat)
        out.append(_row(f"decode 8 MiB line / {label}", runs, len(raw), events=1))
    return out


def bench_small_events(repeat: int) -> list[dict[str, Any]]:
    raw = b"".join(
        b'id: %d\nevent: tick\ndata: {"n":%d,"text":"hello world"}\n\n' % (i, i)
        for i in range(SMALL_EVENTS)
    )
    chunks = _chunks(raw, CHUNK)

    def run() -> None:
        events = _decode(chunks)
        assert len(events) == SMALL_EVENTS
        assert events[-1].id == str(SMALL_EVENTS - 1)

    runs = _time(run, repeat)
    return [_row("decode 100k small events / 64 KiB chunks", runs, len(raw), SMALL_EVENTS)]


def bench_encode(repeat: int) -> list[dict[str, Any]]:
    texts = [f'{{"n":{i},"text":"hello world"}}' for i in range(ENCODE_EVENTS)]
    ids = [str(i) for i in range(ENCODE_EVENTS)]
    dicts = [{"n": i, "text": "hello world"} for i in range(ENCODE_EVENTS)]
    pairs = list(zip(texts, ids, strict=True))

    def full() -> int:
        return sum(len(ServerSentEvent(t, event="tick", id=i).encode()) for t, i in pairs)

    def fast() -> int:
        return sum(len(encode_data(t)) for t in texts)

    def as_json() -> int:
        return sum(len(JSONServerSentEvent(d).encode()) for d in dicts)

    cases: list[tuple[str, Callable[[], int]]] = [
        ("encode 200k events: ServerSentEvent(data, event, id)", full),
        ("encode 200k events: encode_data(text)", fast),
        ("encode 200k events: JSONServerSentEvent(dict)", as_json),
    ]
    try:
        import sse_starlette
    except ImportError:  # a dev dependency: the comparison is optional
        pass
    else:

        def theirs() -> int:
            return sum(
                len(sse_starlette.ServerSentEvent(t, event="tick", id=i, sep="\n").encode())
                for t, i in pairs
            )

        # Same bytes as ours with sep="\n": checked, so the comparison is like for like.
        assert (
            sse_starlette.ServerSentEvent(texts[1], event="tick", id="1", sep="\n").encode()
            == ServerSentEvent(texts[1], event="tick", id="1").encode()
        )
        cases.append(("encode 200k events: sse-starlette ServerSentEvent (reference)", theirs))
    out = []
    for name, fn in cases:
        nbytes = fn()
        assert nbytes > ENCODE_EVENTS * 20
        out.append(_row(name, _time(fn, repeat), nbytes, ENCODE_EVENTS))
    return out


def _row(name: str, runs: list[float], nbytes: int, events: int) -> dict[str, Any]:
    best = min(runs)
    return {
        "name": name,
        "best_s": best,
        "median_s": statistics.median(runs),
        "runs_s": runs,
        "bytes": nbytes,
        "events": events,
        "mib_per_s": nbytes / MIB / best,
        "events_per_s": events / best,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    repeat = max(1, args.repeat)

    rows = bench_big_line(repeat) + bench_small_events(repeat) + bench_encode(repeat)

    width = max(len(r["name"]) for r in rows)
    print(
        f"{'scenario':<{width}}  {'best ms':>9}  {'median ms':>9}  {'MiB/s':>8}  {'events/s':>11}"
    )
    for r in rows:
        print(
            f"{r['name']:<{width}}  {r['best_s'] * 1e3:>9.1f}  {r['median_s'] * 1e3:>9.1f}"
            f"  {r['mib_per_s']:>8.1f}  {r['events_per_s']:>11,.0f}"
        )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python bench/sse_decode.py" + (f" --repeat {repeat}" if repeat != 5 else ""),
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "repeat": repeat,
        "results": rows,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
