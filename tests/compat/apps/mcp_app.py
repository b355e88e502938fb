"""An MCP server (the ``mcp`` SDK's ``MCPServer``) for ``tests/compat/test_mcp_*.py``.

``MCP_SSE_STARLETTE=compat`` (the default) resolves ``sse_starlette`` to
``mianzhang.compat.sse_starlette`` with ``mianzhang.compat.install()`` before ``mcp`` is
imported; ``real`` keeps sse-starlette itself. ``MCP_REDIS_URL`` puts the event store's log in
Redis (shared by instances), else in memory.

* ``streamable``: the streamable HTTP app at ``/mcp``, its event store behind its front;
  ``sse``: the SSE transport app (``/sse``, ``/messages/``).
* Tools: ``add(a, b)``; ``count(n)`` reports progress 1..n; ``paused(key, before, after)``
  reports ``before`` progress steps, waits until ``POST /_release?key=`` (on this instance),
  then reports ``after`` more and returns ``"done {key}"``.
* ``GET /_which``: the module ``sse_starlette`` resolves to, in this process, and how many
  resumptions the store served (``sdk_replays``: through the SDK; ``follows``: all).
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from typing import Any, ClassVar

import mianzhang.compat

if os.environ.get("MCP_SSE_STARLETTE", "compat") == "compat":
    mianzhang.compat.install()

import sse_starlette
from mcp.server.mcpserver import Context, MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mianzhang.compat.mcp import LogEventStore
from mianzhang.log import EventLog, MemoryEventLog

GATES: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)


def make_log() -> EventLog:
    url = os.environ.get("MCP_REDIS_URL")
    if url:
        from mianzhang.log import RedisEventLog

        return RedisEventLog(url)
    return MemoryEventLog()


server = MCPServer("mianzhang-compat-test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
async def count(n: int, ctx: Context) -> str:
    """Report progress 1..n, then return."""
    for i in range(1, n + 1):
        await ctx.report_progress(i, n, f"step {i}")
    return f"counted {n}"


@server.tool()
async def paused(key: str, before: int, after: int, ctx: Context) -> str:
    """Report ``before`` steps, wait for ``/_release?key=``, report ``after`` more."""
    total = before + after
    for i in range(1, before + 1):
        await ctx.report_progress(i, total)
    await GATES[key].wait()
    for i in range(before + 1, total + 1):
        await ctx.report_progress(i, total)
    return f"done {key}"


class CountingStore(LogEventStore):
    """Counts resumptions: through the SDK (``replay_events_after``, the session is here) and
    all of them (``follow``: also those the front serves for another instance's session)."""

    counts: ClassVar[dict[str, int]] = {"sdk_replays": 0, "follows": 0}

    async def replay_events_after(self, last_event_id: str, send_callback: Any) -> str | None:
        self.counts["sdk_replays"] += 1
        return await super().replay_events_after(last_event_id, send_callback)

    def follow(self, target: Any) -> Any:
        self.counts["follows"] += 1
        return super().follow(target)


async def release(request: Request) -> Response:
    GATES[request.query_params["key"]].set()
    return JSONResponse({"released": True})


async def which(request: Request) -> Response:
    return JSONResponse({"sse_starlette": sse_starlette.__name__, **CountingStore.counts})


ROUTES = [Route("/_release", release, methods=["POST"]), Route("/_which", which)]

store = CountingStore(make_log())
_streamable = server.streamable_http_app(event_store=store, retry_interval=100)
_streamable.router.routes.extend(ROUTES)
streamable = store.asgi(_streamable)
sse = server.sse_app()
sse.router.routes.extend(ROUTES)
