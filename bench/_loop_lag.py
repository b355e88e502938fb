"""A mianzhang server's event-loop lag, read from its ``/metrics`` (``bench/fanout.py --mode
idle``, through ``bench/_fanout_client.py``).

The server exposes ``mianzhang_event_loop_lag_seconds`` (a histogram, one observation per
tick of a timer due every ``MIANZHANG_LOOP_LAG_INTERVAL``, 0.25 s) and
``mianzhang_event_loop_lag_max_seconds`` (the largest lag since the server started). Two
scrapes, before and after a window, give the window's lag: the histogram's bucket deltas and
its p99 estimated as Prometheus' ``histogram_quantile`` does (linear inside the bucket, capped
at the max gauge: interpolation may land above every real tick), and the max gauge before and
after (the max grew in the window if they differ). Plain text parsing and ``urllib``: nothing
to import in the lean client.
"""

from __future__ import annotations

import math
import re
import urllib.request
from typing import Any

__all__ = ["first_scrape", "lag_window", "quantile", "scrape", "window"]

LAG = "mianzhang_event_loop_lag_seconds"
MAX = "mianzhang_event_loop_lag_max_seconds"
SAMPLE = re.compile(r'^(\w+)(?:\{le="([^"]+)"\})? (\S+)$')


def scrape(ports: list[int], timeout: float = 10.0) -> dict[str, Any]:
    """The lag metrics of the servers on ``ports``, summed (buckets, count, sum) and the
    largest max: ``{"buckets": {le: cumulative}, "count", "sum", "max"}``."""
    total: dict[str, Any] = {"buckets": {}, "count": 0.0, "sum": 0.0, "max": 0.0}
    for port in ports:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            text = answer.read().decode()
        for line in text.splitlines():
            found = SAMPLE.match(line)
            if found is None:
                continue
            name, le, value = found.group(1), found.group(2), float(found.group(3))
            if name == f"{LAG}_bucket" and le is not None:
                bound = math.inf if le == "+Inf" else float(le)
                total["buckets"][bound] = total["buckets"].get(bound, 0.0) + value
            elif name in (f"{LAG}_count", f"{LAG}_sum"):
                total[name.rsplit("_", 1)[1]] += value
            elif name == MAX:
                total["max"] = max(total["max"], value)
    return total


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``histogram_quantile(q)`` of cumulative ``buckets`` (upper bound -> count): linear
    inside the bucket holding the rank; the largest finite bound when it falls in ``+Inf``."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def window(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The lag between two :func:`scrape` results: ticks, p99 (estimated), mean and the
    highest non-empty bucket of the window; the max gauge before and after it; the p99 since
    the server started."""
    delta = {b: after["buckets"][b] - before["buckets"].get(b, 0.0) for b in after["buckets"]}
    ticks = after["count"] - before["count"]
    # the highest non-empty bucket: the smallest bound whose cumulative count is every tick
    highest = next((b for b in sorted(delta) if delta[b] >= ticks), None) if ticks else None
    p99 = quantile(0.99, delta)  # interpolated: never above the max, which bounds every tick
    return {
        "ticks": int(ticks),
        "p99_ms": None if p99 is None else _ms(min(p99, after["max"])),
        "mean_ms": _ms((after["sum"] - before["sum"]) / ticks if ticks else None),
        "highest_bucket_le_ms": "+Inf" if highest == math.inf else _ms(highest),
        "max_ms": _ms(after["max"]),
        "max_before_ms": _ms(before["max"]),
        "p99_since_start_ms": _ms(min(quantile(0.99, after["buckets"]) or 0.0, after["max"])),
    }


def lag_window(ports: list[int], before: dict[str, Any] | None) -> dict[str, Any] | None:
    """Scrape ``ports`` now and return the :func:`window` since ``before``; ``None`` without
    ports, ``{"error": ...}`` when a scrape failed (the run goes on)."""
    if not ports or before is None:
        return None
    try:
        return window(before, scrape(ports))
    except (OSError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def first_scrape(ports: list[int]) -> dict[str, Any] | None:
    """:func:`scrape` at a window's start; ``None`` without ports or when it failed."""
    try:
        return scrape(ports) if ports else None
    except (OSError, ValueError):
        return None
