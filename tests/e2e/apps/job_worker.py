"""A job worker process for e2e tests: ``python -m tests.e2e.apps.job_worker URL VISIBILITY``.

Registers ``sleepy``: ``steps`` progress reports ``interval`` seconds apart, then a result.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from mianzhang.jobs import JobContext, JobRegistry, run_worker

registry = JobRegistry()


@registry.job("sleepy")
async def sleepy(ctx: JobContext) -> dict[str, Any]:
    steps = int(ctx.input.get("steps", 10))
    for i in range(1, steps + 1):
        await asyncio.sleep(float(ctx.input.get("interval", 0.1)))
        await ctx.progress(100 * i / steps, f"step {i}/{steps}")
    return {"steps": steps, "attempt": ctx.attempt}


if __name__ == "__main__":
    url, visibility = sys.argv[1], float(sys.argv[2])
    asyncio.run(run_worker(url, registry, visibility_timeout=visibility, consumer=sys.argv[3]))
