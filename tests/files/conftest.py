"""Fixtures for the file feature: a storage in tmp_path, the routes in a FastAPI app, an
httpx client speaking ASGI to it, and a memory event log receiving upload progress."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from mianzhang.files import FileMeta, FilesService, FilesSettings, new_file_id
from mianzhang.log import MemoryEventLog
from mianzhang.server._deps import get_files
from mianzhang.server.routes.files import files_router


def make_app(service: FilesService) -> FastAPI:
    app = FastAPI()
    app.include_router(files_router)
    app.dependency_overrides[get_files] = lambda: service
    return app


@pytest.fixture
def settings(tmp_path: Path) -> FilesSettings:
    return FilesSettings(directory=tmp_path / "files", fsync=False, progress_interval=0.0)


@pytest.fixture
async def log() -> AsyncIterator[MemoryEventLog]:
    async with MemoryEventLog() as event_log:
        yield event_log


@pytest.fixture
def service(settings: FilesSettings, log: MemoryEventLog) -> FilesService:
    return FilesService(settings, log)


@pytest.fixture
async def client(service: FilesService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


StoreFile = Callable[..., FileMeta]


@pytest.fixture
def store_file(service: FilesService) -> StoreFile:
    """Put bytes into the storage directly (as a committed upload would)."""

    def store(
        data: bytes, *, name: str | None = "data.bin", content_type: str = "text/plain"
    ) -> FileMeta:
        temp = service.storage.new_temp()
        with open(temp.fd, "wb", closefd=False) as handle:
            handle.write(data)
        meta = FileMeta(
            id=new_file_id(),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            name=name,
            content_type=content_type,
            created=time.time(),
        )
        service.storage.commit(temp.path, meta, fd=temp.fd)
        temp.close()
        return meta

    return store
