"""The soak's numbers: samples, the per-minute table, and the flat-after-warm-up verdict
(``bench/soak.py``)."""

from __future__ import annotations

from dataclasses import dataclass

# series kind (a word in the series name) -> (absolute tolerance, relative tolerance)
TOLERANCE = {"RSS": (3.0, 0.03), "fds": (3.0, 0.05), "tasks": (10.0, 0.10), "Redis": (1.0, 0.05)}
COLUMNS = ("RSS", "fds", "tasks")


@dataclass
class Sample:
    t: float  # seconds since the load started
    values: dict[str, float]  # series -> value ("A RSS MiB", "A fds", "Redis MiB", ...)


@dataclass
class Census:
    """Redis keys of one pattern at the end of the run."""

    pattern: str
    keys: int
    mib: float  # estimated
    min_ttl: int  # seconds (-1: no TTL)
    max_ttl: int


@dataclass
class Verdict:
    series: str
    first: float  # the value at the end of the warm-up
    last: float
    slope: float  # fitted growth per minute after the warm-up
    growth: float  # fitted growth over the window after the warm-up
    tolerance: float

    @property
    def flat(self) -> bool:
        return self.growth <= self.tolerance


def _kind(series: str) -> str | None:
    return next((kind for kind in TOLERANCE if kind in series.split()), None)


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60


def verdicts(samples: list[Sample], warmup: float) -> list[Verdict]:
    """One verdict per watched series (RSS, fds, tasks, Redis), on the samples from the end
    of the warm-up on (the last two samples at least)."""
    after = [s for s in samples if s.t >= warmup] or samples[-2:]
    if len(after) < 2:
        after = samples[-2:]
    window = (after[-1].t - after[0].t) / 60
    found = []
    for series in samples[0].values:
        kind = _kind(series)
        if kind is None:
            continue
        points = [(s.t, s.values[series]) for s in after]
        slope = _slope(points)
        mean = sum(v for _, v in points) / len(points)
        absolute, relative = TOLERANCE[kind]
        tolerance = max(absolute, relative * mean)
        found.append(Verdict(series, points[0][1], points[-1][1], slope, slope * window, tolerance))
    return found


def minute_table(rows: list[tuple[str, Sample, dict[str, int]]], instances: list[str]) -> str:
    """Markdown: one row per minute, each instance's RSS/fds/tasks, Redis, operations done."""
    kinds = sorted({kind for _, _, counts in rows for kind in counts})
    head = ["min"]
    for name in instances:
        head += [f"{name} RSS MiB", f"{name} fds", f"{name} tasks"]
    head += ["Redis MiB", *kinds]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for minute, sample, counts in rows:
        cells = [minute]
        for name in instances:
            v = sample.values
            cells += [f"{v[f'{name} RSS MiB']:.1f}", f"{v[f'{name} fds']:.0f}"]
            cells.append(f"{v[f'{name} tasks']:.0f}")
        cells.append(f"{sample.values['Redis MiB']:.2f}")
        cells += [str(counts.get(kind, 0)) for kind in kinds]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict_table(found: list[Verdict]) -> str:
    lines = [
        "| series | after warm-up | at the end | fitted slope /min | fitted growth | tolerance"
        " | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for v in found:
        lines.append(
            f"| {v.series} | {v.first:.2f} | {v.last:.2f} | {v.slope:+.3f} | {v.growth:+.2f}"
            f" | {v.tolerance:.2f} | {'flat' if v.flat else 'GROWING'} |"
        )
    return "\n".join(lines)


def census_table(census: list[Census]) -> str:
    lines = ["| key pattern | keys | MiB (est.) | TTL left, s |", "|---|---:|---:|---|"]
    for c in census[:15]:
        ttl = "none" if c.max_ttl < 0 else f"{c.min_ttl}-{c.max_ttl}"
        lines.append(f"| `{c.pattern}` | {c.keys} | {c.mib:.2f} | {ttl} |")
    return "\n".join(lines)


def report_markdown(
    header: str,
    rows: list[tuple[str, Sample, dict[str, int]]],
    instances: list[str],
    found: list[Verdict],
    totals: dict[str, int],
    errors: list[str],
    census: list[Census],
) -> str:
    overall = "FLAT" if all(v.flat for v in found) else "GROWING"
    parts = [
        header,
        "## Every minute\n\n" + minute_table(rows, instances),
        f"## Verdict: {overall}\n\n" + verdict_table(found),
        "## Totals\n\n" + ", ".join(f"{k}: {v}" for k, v in sorted(totals.items())),
        "Sequence checks (channel subscribers across resumes): gaps"
        f" {totals.get('gaps', 0)}, duplicates {totals.get('duplicates', 0)}, resets"
        f" {totals.get('resets', 0)}; errors {totals.get('errors', 0)}.",
    ]
    parts.append("## Redis at the end, by key pattern\n\n" + census_table(census))
    if errors:
        parts.append("## First errors\n\n" + "\n".join(f"- `{e}`" for e in errors))
    return "\n\n".join(parts) + "\n"
