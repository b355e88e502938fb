"""FilesService: statistics, draining (SIGTERM), reading a stored file (for jobs)."""

from __future__ import annotations

import hashlib
import os
from contextlib import aclosing

import anyio
import httpx
import pytest

from mianzhang._errors import FileNotFound
from mianzhang.files import FilesService, new_file_id
from tests._support.asgi import StalledClient, http_scope

from .conftest import StoreFile, make_app
from .test_tus import OCTETS, TUS, create


async def test_stats_count_uploads_and_downloads(
    client: httpx.AsyncClient, service: FilesService
) -> None:
    data = os.urandom(50_000)
    stored = await client.put("/v1/files/a.bin", content=data)
    assert stored.status_code == 201
    refused = await client.put(
        "/v1/files/b.bin", content=b"x" * 10, headers={"X-Checksum-Sha256": "0" * 64}
    )
    assert refused.status_code == 400
    whole = await client.get(stored.headers["location"])
    part = await client.get(stored.headers["location"], headers={"Range": "bytes=0-99"})
    assert (whole.status_code, part.status_code) == (200, 206)
    assert (await client.head(stored.headers["location"])).status_code == 200
    stats = service.stats.snapshot()
    assert stats == {
        "upload_bytes": 50_010,
        "uploads_completed": 1,
        "uploads_failed": 1,
        "active_uploads": 0,
        "download_bytes": 50_100,
        "downloads": 2,  # HEAD sends no body
        "active_downloads": 0,
    }


async def test_tus_upload_counts_once_complete(
    client: httpx.AsyncClient, service: FilesService
) -> None:
    url = await create(client, 3000)
    for offset in (0, 1000, 2000):
        response = await client.patch(
            url, content=b"t" * 1000, headers={**OCTETS, "Upload-Offset": str(offset)}
        )
        assert response.status_code == 204
    assert service.stats.upload_bytes == 3000
    assert service.stats.uploads_completed == 1


async def test_drain_stops_running_patches_and_refuses_new_uploads(
    client: httpx.AsyncClient, service: FilesService
) -> None:
    data = os.urandom(300_000)
    url = await create(client, len(data))
    app = make_app(service)
    stalled = StalledClient(data[:100_000])
    sent = stalled.sent
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            patch_headers = {**OCTETS, "Upload-Offset": "0"}
            scope = http_scope("PATCH", url, headers=patch_headers.items())
            group.start_soon(app, scope, stalled.receive, stalled.send)
            await stalled.taken.wait()
            assert service.stats.active_uploads == 1
            stopped = await service.drain()
    assert stopped == 1
    headers = dict(sent[0]["headers"])
    assert sent[0]["status"] == 204
    assert headers[b"upload-offset"] == b"100000"  # what arrived is kept
    assert headers[b"connection"] == b"close"  # the client continues on another instance
    assert service.stats.active_uploads == 0

    # new uploads of every kind: 503 with Retry-After, before any byte is read
    for response in (
        await client.post("/v1/uploads", headers={**TUS, "Upload-Length": "10"}),
        await client.patch(url, content=b"x", headers={**OCTETS, "Upload-Offset": "100000"}),
        await client.put("/v1/files/late.bin", content=b"late"),
        await client.post("/v1/files", files={"f": ("a.txt", b"a")}),
    ):
        assert response.status_code == 503, response.request.url
        assert response.headers["retry-after"] == "1"
        assert response.headers["connection"] == "close"
        assert response.json()["error"]["type"] == "draining"
    # the upload can still be inspected (and resumed elsewhere: the storage is shared)
    head = await client.head(url, headers=TUS)
    assert head.headers["upload-offset"] == "100000"
    await service.aclose()
    await service.aclose()  # idempotent


async def test_read_streams_a_stored_file(service: FilesService, store_file: StoreFile) -> None:
    data = os.urandom(100_001)
    meta = store_file(data)
    async with aclosing(service.read(meta.id, chunk_size=4096)) as reader:
        pieces = [piece async for piece in reader]
    assert max(len(piece) for piece in pieces) == 4096
    assert hashlib.sha256(b"".join(pieces)).hexdigest() == meta.sha256


@pytest.mark.parametrize("file_id", ["../etc/passwd", "nothing", None])
async def test_read_of_a_missing_file(service: FilesService, file_id: str | None) -> None:
    with pytest.raises(FileNotFound):
        async with aclosing(service.read(file_id or new_file_id())) as reader:
            async for _ in reader:
                pass
