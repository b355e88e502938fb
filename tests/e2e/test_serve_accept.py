"""``mianzhang serve`` accepting a storm of connections (``server/_acceptor.py``), and with
``MIANZHANG_ACCEPT_BATCH=0`` leaving the accept to the event loop: every connection of a burst
that arrives at once is served, and a channel's subscribers opened together all get its
events."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests._support.procs import serve_process

pytestmark = pytest.mark.e2e

BURST = 300


async def _burst(url: str) -> list[int]:
    """``BURST`` connections made at once, each with its own request."""
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        responses = await asyncio.gather(*(client.get("/healthz") for _ in range(BURST)))
    return [response.status_code for response in responses]


@pytest.mark.parametrize("batch", ["128", "0"])
async def test_a_burst_of_connections_is_served(batch: str) -> None:
    env = {"MIANZHANG_ACCEPT_BATCH": batch, "MIANZHANG_WEB": "false"}
    with serve_process(env=env) as process:
        async with asyncio.timeout(60):
            assert await _burst(process.url) == [200] * BURST
        output = process.output()
    assert "Traceback" not in output, output
