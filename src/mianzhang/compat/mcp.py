"""An ``EventStore`` for the ``mcp`` SDK's streamable HTTP transport on mianzhang's event log.

With it an MCP server's streams survive a dropped connection, on the same instance and, with
a log shared through Redis, on another one::

    from mcp.server.mcpserver import MCPServer
    from mianzhang.compat.mcp import LogEventStore
    from mianzhang.log import RedisEventLog

    mcp = MCPServer("demo")
    store = LogEventStore(RedisEventLog("redis://..."))   # or MemoryEventLog() for one process
    app = store.asgi(mcp.streamable_http_app(event_store=store))

What ``mcp`` 2.3.0 offers, and what this builds on: resumability exists only on the
*handshake-era* streamable HTTP transport (protocol versions 2024-11-05 to 2025-11-25, with
sessions; clients made with ``Client(url, mode="legacy")``). The 2026-07-28 revision, which
the SDK's ``Client`` negotiates by default against a 2.3.0 server, has no sessions, no event
ids and no ``EventStore``: there, a dropped stream is a cancelled request. Priming events
(which let a client resume before the first message) come with 2025-11-25. The SDK keeps
sessions in process memory, so on another instance only resumption works (the front serves
it from the log); new requests of the session must reach the instance that holds it.

Requires the ``mcp`` package (``pip install mcp``); ``import mianzhang.compat`` does not.
"""

from __future__ import annotations

from ._mcp_front import McpFront
from ._mcp_store import LogEventStore

__all__ = ["LogEventStore", "McpFront"]
