"""The file routers: the read and write route groups get their own dependencies (auth)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request

from mianzhang.files import FilesService
from mianzhang.server._deps import get_files
from mianzhang.server.routes.files import files_read_router, files_write_router

from .conftest import StoreFile


def require(scope: str) -> Any:
    def check(request: Request) -> None:
        if scope not in request.headers.get("x-scopes", "").split():
            raise HTTPException(403, f"needs {scope}")

    return Depends(check)


@pytest.fixture
async def guarded(service: FilesService) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(files_read_router, dependencies=[require("files:read")])
    app.include_router(files_write_router, dependencies=[require("files:write")])
    app.dependency_overrides[get_files] = lambda: service
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_read_and_write_groups_are_guarded_separately(
    guarded: httpx.AsyncClient, store_file: StoreFile
) -> None:
    meta = store_file(b"hello")
    reader = {"x-scopes": "files:read"}
    writer = {"x-scopes": "files:write"}
    tus = {"Tus-Resumable": "1.0.0"}
    # read group
    for method, url in (
        ("GET", f"/v1/files/{meta.id}"),
        ("HEAD", f"/v1/files/{meta.id}"),
        ("GET", "/v1/files"),
        ("GET", f"/v1/files/{meta.id}/meta"),
    ):
        assert (await guarded.request(method, url, headers=reader)).status_code == 200, url
        assert (await guarded.request(method, url, headers=writer)).status_code == 403, url
    # write group
    writes = [
        ("PUT", "/v1/files/a.txt", {}, 201),
        ("PUT", "/v1/files?name=b.txt", {}, 201),
        ("POST", "/v1/files", {}, 201),
        ("POST", "/v1/uploads", {**tus, "Upload-Length": "3"}, 201),
        ("OPTIONS", "/v1/uploads", tus, 204),
        ("DELETE", f"/v1/files/{meta.id}", {}, 204),
    ]
    for method, url, headers, status in writes:
        refused = await guarded.request(method, url, headers={**reader, **headers}, content=b"x")
        assert refused.status_code == 403, url
        allowed = await guarded.request(method, url, headers={**writer, **headers}, content=b"x")
        assert allowed.status_code == status, (url, allowed.text)
