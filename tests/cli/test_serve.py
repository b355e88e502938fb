"""``mianzhang serve``'s server: once the app has started, the collector is set up (what
exists is frozen, the young generation's threshold raised)."""

from __future__ import annotations

import asyncio
import gc
import socket

import uvicorn

from mianzhang.cli._serve import GC_THRESHOLD, _new_server
from tests._support.wait import eventually


async def app(scope: dict[str, object], receive: object, send: object) -> None:
    """An ASGI app with nothing to start."""


async def test_the_collector_is_set_up_once_the_app_has_started() -> None:
    before = gc.get_threshold()
    server = _new_server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    assert gc.get_threshold() == before  # nothing changes before the start
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started)
        assert gc.get_threshold()[0] == GC_THRESHOLD
        assert gc.get_freeze_count() > 0
        assert len(server.acceptors) == 1  # type: ignore[attr-defined]  # (batched accept)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        gc.unfreeze()
        gc.set_threshold(*before)
        sock.close()
