"""The ``mcp`` SDK (its server and its own client) with ``sse_starlette`` resolved to
``mianzhang.compat`` in the server process, over real uvicorn sockets: the streamable HTTP and
SSE transports, progress notifications, and a dropped connection resumed through the
log-backed ``EventStore``, on the same instance and on a second one sharing Redis.

Resumability needs the handshake-era protocol (``Client(..., mode="legacy")`` negotiates
2025-11-25): the SDK's 2026-07-28 transport has no event ids (see mianzhang.compat.mcp).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.sse import sse_client

from tests._support.faultproxy import FaultProxy
from tests._support.procs import ServerProcess, uvicorn_process
from tests._support.wait import eventually

pytestmark = pytest.mark.e2e

STREAMABLE = "tests.compat.apps.mcp_app:streamable"
SSE = "tests.compat.apps.mcp_app:sse"
BOUND = 30.0


@pytest.fixture(scope="module")
def streamable() -> Iterator[ServerProcess]:
    with uvicorn_process(STREAMABLE) as proc:
        yield proc


class Progress:
    """The progress notifications a call received, in order."""

    def __init__(self) -> None:
        self.values: list[float] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.values.append(progress)


def which(server: ServerProcess) -> dict[str, Any]:
    return dict(httpx.get(server.url + "/_which", timeout=5).json())


def resolved_sse_starlette(server: ServerProcess) -> str:
    return str(which(server)["sse_starlette"])


async def test_streamable_http_initialize_tools_and_progress(streamable: ServerProcess) -> None:
    assert resolved_sse_starlette(streamable) == "mianzhang.compat.sse_starlette"
    progress = Progress()
    async with asyncio.timeout(BOUND), Client(streamable.url + "/mcp", mode="legacy") as client:
        assert client.protocol_version == "2025-11-25"
        tools = await client.list_tools()
        assert {tool.name for tool in tools.tools} == {"add", "count", "paused"}
        added = await client.call_tool("add", {"a": 2, "b": 40})
        assert [c.text for c in added.content] == ["42"]  # type: ignore[union-attr]
        counted = await client.call_tool("count", {"n": 5}, progress_callback=progress)
        assert [c.text for c in counted.content] == ["counted 5"]  # type: ignore[union-attr]
    assert progress.values == [1, 2, 3, 4, 5]


async def test_sse_transport_initialize_tools_and_progress() -> None:
    progress = Progress()
    with uvicorn_process(SSE) as server:
        assert resolved_sse_starlette(server) == "mianzhang.compat.sse_starlette"
        async with (
            asyncio.timeout(BOUND),
            Client(sse_client(server.url + "/sse"), mode="legacy") as client,
        ):
            tools = await client.list_tools()
            assert {tool.name for tool in tools.tools} == {"add", "count", "paused"}
            added = await client.call_tool("add", {"a": 1, "b": 1})
            assert [c.text for c in added.content] == ["2"]  # type: ignore[union-attr]
            await client.call_tool("count", {"n": 3}, progress_callback=progress)
    assert progress.values == [1, 2, 3]


async def _call_dropped_midway(
    proxy: FaultProxy, origin: ServerProcess, resume_on: ServerProcess
) -> tuple[Any, Progress]:
    """Call ``paused`` through ``proxy``; after its first two progress notifications cut every
    connection (RST) and send new ones to ``resume_on``; release the tool on ``origin`` once
    the client has reconnected. The client resumes with ``Last-Event-ID`` by itself."""
    key = uuid.uuid4().hex
    progress = Progress()
    async with Client(proxy.url() + "/mcp", mode="legacy") as client:
        await client.list_tools()  # (the client validates results against the listed tools)
        call = asyncio.create_task(
            client.call_tool(
                "paused", {"key": key, "before": 2, "after": 3}, progress_callback=progress
            )
        )
        try:
            await eventually(lambda: len(progress.values) >= 2, timeout=BOUND)
            before = proxy.stats().connections
            proxy.set_target(resume_on.port)
            assert proxy.reset_all() >= 1
            await eventually(lambda: proxy.stats().connections > before, timeout=BOUND)
            async with httpx.AsyncClient() as http:
                released = await http.post(f"{origin.url}/_release", params={"key": key})
                assert released.status_code == 200
            result = await asyncio.wait_for(call, BOUND)
        finally:
            call.cancel()
            await asyncio.gather(call, return_exceptions=True)
        proxy.set_target(origin.port)  # the session lives there: its DELETE goes home
    return result, progress


async def test_dropped_connection_resumes_on_the_same_instance(streamable: ServerProcess) -> None:
    before = which(streamable)
    with FaultProxy(streamable.port) as proxy:
        result, progress = await _call_dropped_midway(proxy, streamable, streamable)
    after = which(streamable)
    assert after["sdk_replays"] == before["sdk_replays"] + 1  # the SDK's replay, our store
    assert next(c.text for c in result.content).startswith("done ")
    assert progress.values == [1, 2, 3, 4, 5]  # nothing lost, nothing twice


@pytest.mark.redis
async def test_dropped_connection_resumes_on_another_instance(redis_url: str) -> None:
    env = {"MCP_REDIS_URL": redis_url}
    with (
        uvicorn_process(STREAMABLE, env=env) as origin,
        uvicorn_process(STREAMABLE, env=env) as other,
        FaultProxy(origin.port) as proxy,
    ):
        result, progress = await _call_dropped_midway(proxy, origin, other)
        assert "Error" not in other.output(), other.output()
        served = which(other)
        assert served["follows"] == 1 and served["sdk_replays"] == 0  # the front, from Redis
    assert next(c.text for c in result.content).startswith("done ")
    assert progress.values == [1, 2, 3, 4, 5]
