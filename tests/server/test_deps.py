"""The router convention: a router mounted in a user's own app (no ``create_app``, no
``Services``) gets its services from ``app.dependency_overrides`` of the ``get_x`` accessors,
and its auth from whatever dependency the app adds where it includes it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request

from mianzhang import SSEDecoder
from mianzhang.log import MemoryEventLog
from mianzhang.log.serve import StreamHost
from mianzhang.server._deps import get_host, get_tails
from mianzhang.server.routes.streams import streams_router
from mianzhang.server.routes.tails import tails_router
from mianzhang.tails import TailsSettings


@pytest.fixture
async def host() -> AsyncIterator[StreamHost]:
    async with MemoryEventLog() as log:
        stream_host = StreamHost(log)
        try:
            yield stream_host
        finally:
            await stream_host.aclose()


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_streams_router_in_a_plain_app_uses_the_overridden_host(host: StreamHost) -> None:
    await host.log.create("s1")
    await host.log.append("s1", "one")
    await host.log.append("s1", "two")
    await host.log.close("s1")

    def only_admins(request: Request) -> None:
        if request.headers.get("x-role") != "admin":
            raise HTTPException(403, "admins only")

    app = FastAPI()
    app.include_router(streams_router, dependencies=[Depends(only_admins)])
    app.dependency_overrides[get_host] = lambda: host
    admin = {"x-role": "admin"}
    async with _client(app) as http:
        info = await http.get("/v1/streams/s1/info", headers=admin)
        assert info.status_code == 200
        assert info.json()["length"] == 2
        assert info.json()["state"] == "closed"
        read = await http.get("/v1/streams/s1", headers=admin)
        assert [e.data for e in SSEDecoder().decode(read.content)] == ["one", "two"]
        missing = await http.get("/v1/streams/nope/info", headers=admin)
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "not_found"
        assert (await http.get("/v1/streams/s1/info")).status_code == 403


async def test_tails_router_reads_its_settings_from_the_override(
    host: StreamHost, tmp_path: Path
) -> None:
    log_file = tmp_path / "app.log"
    log_file.write_text("a\n")
    app = FastAPI()
    app.include_router(tails_router)
    app.dependency_overrides[get_tails] = lambda: TailsSettings(files={"app": log_file})
    app.dependency_overrides[get_host] = lambda: host
    async with _client(app) as http:
        assert (await http.get("/v1/tails")).json() == {"tails": ["app"]}
        refused = await http.get("/v1/tails/app", params={"last_lines": "x"})
        assert refused.status_code == 400
        assert refused.json()["error"]["type"] == "invalid_request"
