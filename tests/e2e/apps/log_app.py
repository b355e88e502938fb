"""The real server (``mianzhang.server.create_app``) plus one test-only producer route.

``POST /_test/produce?stream=S&n=N&size=B&every=K&pause=P``: a background producer appends N
events ``{"i": i, "pad": "x" * B}`` to stream S (retention N + 10 events), pausing P seconds
after every K events, so readers meet a live tail. Run with
``uvicorn_process("tests.e2e.apps.log_app:create_app", factory=True, env={MIANZHANG_...})``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request

from mianzhang import json_dumps
from mianzhang.log import LogEntry
from mianzhang.server import Services
from mianzhang.server import create_app as create_server


def create_app() -> FastAPI:
    app = create_server()

    @app.post("/_test/produce")
    async def produce(
        request: Request, stream: str, n: int, size: int = 32, every: int = 0, pause: float = 0
    ) -> dict[str, str]:
        services: Services = request.app.state.services
        await services.log.create(stream, max_events=n + 10, ttl_after_close=600)

        async def entries() -> AsyncIterator[LogEntry]:
            pad = "x" * size
            for i in range(1, n + 1):
                yield LogEntry(json_dumps({"i": i, "pad": pad}))
                if every and i % every == 0:
                    await asyncio.sleep(pause)

        await services.host.start(stream, entries(), background=True)
        return {"stream": stream}

    return app
