"""tus 1.0.0 (core, creation, termination, expiration, checksum) over HTTP (ASGI)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from typing import Any

import anyio
import httpx
import pytest

from mianzhang.files import FilesService, parse_upload_metadata, progress_stream
from mianzhang.files._tus import TusUploads
from mianzhang.log import MemoryEventLog
from tests._support.asgi import StalledClient, http_scope

from .conftest import make_app

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def create(client: httpx.AsyncClient, length: int, **headers: str) -> str:
    response = await client.post(
        "/v1/uploads",
        headers={
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": (
                f"filename {b64('report ü.pdf')},filetype {b64('application/pdf')},empty"
            ),
            **headers,
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["tus-resumable"] == "1.0.0"
    location = response.headers["location"]
    assert location.startswith("/v1/uploads/")
    return location


async def patch(
    client: httpx.AsyncClient, url: str, offset: int, data: bytes, **headers: str
) -> httpx.Response:
    return await client.patch(
        url, content=data, headers={**OCTETS, "Upload-Offset": str(offset), **headers}
    )


async def test_options(client: httpx.AsyncClient, service: FilesService) -> None:
    response = await client.options("/v1/uploads")
    assert response.status_code == 204
    h = response.headers
    assert h["tus-resumable"] == "1.0.0"
    assert h["tus-version"] == "1.0.0"
    assert set(h["tus-extension"].split(",")) == {
        "creation",
        "termination",
        "expiration",
        "checksum",
    }
    assert h["tus-max-size"] == str(service.settings.max_upload_size)
    assert "sha256" in h["tus-checksum-algorithm"].split(",")


@pytest.mark.parametrize("version", [None, "0.2.2", "1.0"])
async def test_unsupported_version_is_412(client: httpx.AsyncClient, version: str | None) -> None:
    headers = {"Upload-Length": "5"}
    if version is not None:
        headers["Tus-Resumable"] = version
    response = await client.post("/v1/uploads", headers=headers)
    assert response.status_code == 412
    assert response.headers["tus-version"] == "1.0.0"
    assert response.headers["tus-resumable"] == "1.0.0"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 400),
        ({"Upload-Length": "-1"}, 400),
        ({"Upload-Length": "abc"}, 400),
        ({"Upload-Defer-Length": "1"}, 400),
        ({"Upload-Length": str(10**15)}, 413),
        ({"Upload-Length": "5", "Upload-Metadata": "key !!notbase64"}, 400),
        ({"Upload-Length": "5", "Upload-Metadata": "a YQ==,a YQ=="}, 400),
        ({"Upload-Length": "5", "Upload-Metadata": "k " + "YQ==" * 2000}, 400),
    ],
)
async def test_creation_errors(
    client: httpx.AsyncClient, service: FilesService, headers: dict[str, str], status: int
) -> None:
    response = await client.post("/v1/uploads", headers={**TUS, **headers})
    assert response.status_code == status
    assert response.headers["tus-resumable"] == "1.0.0"
    assert list(service.storage.tus_dir.iterdir()) == []


async def test_upload_in_chunks_then_download(
    client: httpx.AsyncClient, service: FilesService, log: MemoryEventLog
) -> None:
    data = os.urandom(250_000)
    url = await create(client, len(data))
    upload_id = url.rsplit("/", 1)[1]
    head = await client.head(url, headers=TUS)
    assert head.status_code == 200
    assert head.headers["upload-offset"] == "0"
    assert head.headers["upload-length"] == str(len(data))
    assert head.headers["cache-control"] == "no-store"
    assert head.headers["upload-metadata"].startswith("filename ")
    offset = 0
    for size in (100_000, 100_000, 50_000):
        response = await patch(client, url, offset, data[offset : offset + size])
        assert response.status_code == 204, response.text
        offset += size
        assert response.headers["upload-offset"] == str(offset)
        assert response.headers["tus-resumable"] == "1.0.0"
    head = await client.head(url, headers=TUS)
    assert head.headers["upload-offset"] == str(len(data))
    download = await client.get(f"/v1/files/{upload_id}")
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert download.headers["content-type"] == "application/pdf"
    assert "filename*=UTF-8''report%20%C3%BC.pdf" in download.headers["content-disposition"]
    # a completed upload takes no more bytes
    again = await patch(client, url, len(data), b"x")
    assert again.status_code == 409
    # progress: receiving ... paused ... complete, then the stream is closed
    _, events = await log.read(progress_stream(upload_id))
    states = [json.loads(e.data)["state"] for e in events]
    assert states[0] == "receiving" and states[-1] == "complete"
    assert states.count("paused") == 2
    assert json.loads(events[-1].data)["url"] == f"/v1/files/{upload_id}"


async def test_patch_errors(client: httpx.AsyncClient) -> None:
    url = await create(client, 10)
    wrong_type = await client.patch(
        url, content=b"abc", headers={**TUS, "Upload-Offset": "0", "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    conflict = await patch(client, url, 3, b"abc")
    assert conflict.status_code == 409
    assert conflict.headers["upload-offset"] == "0"
    missing_offset = await client.patch(url, content=b"abc", headers=OCTETS)
    assert missing_offset.status_code == 400
    too_much = await patch(client, url, 0, b"x" * 11)
    assert too_much.status_code == 413
    unknown = await patch(client, "/v1/uploads/" + "0" * 32, 0, b"abc")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "not_found"
    not_an_id = await patch(client, "/v1/uploads/..", 0, b"abc")
    assert not_an_id.status_code in (404, 405)
    assert (await client.head(url, headers=TUS)).headers["upload-offset"] == "0"


async def test_streamed_bytes_past_length_are_refused_and_the_rest_kept(
    client: httpx.AsyncClient,
) -> None:
    url = await create(client, 10)

    async def body() -> Any:
        yield b"12345678"
        yield b"9abc"

    response = await client.patch(url, content=body(), headers={**OCTETS, "Upload-Offset": "0"})
    assert response.status_code == 413
    assert response.headers["upload-offset"] == "8"


async def test_upload_checksum(client: httpx.AsyncClient) -> None:
    url = await create(client, 6)
    good = base64.b64encode(hashlib.sha1(b"abc").digest()).decode()
    ok = await patch(client, url, 0, b"abc", **{"Upload-Checksum": f"sha1 {good}"})
    assert ok.status_code == 204
    bad = base64.b64encode(hashlib.sha256(b"zzz").digest()).decode()
    mismatch = await patch(client, url, 3, b"def", **{"Upload-Checksum": f"sha256 {bad}"})
    assert mismatch.status_code == 460
    assert mismatch.headers["upload-offset"] == "3"  # the bytes were dropped
    assert (await client.head(url, headers=TUS)).headers["upload-offset"] == "3"
    unsupported = await patch(client, url, 3, b"def", **{"Upload-Checksum": f"crc32 {good}"})
    assert unsupported.status_code == 400


async def test_whole_file_digest_at_creation(
    client: httpx.AsyncClient, service: FilesService
) -> None:
    data = b"hello tus"
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    url = await create(client, len(data), **{"Repr-Digest": f"sha-256=:{digest}:"})
    assert (await patch(client, url, 0, data)).status_code == 204
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    url2 = await create(client, len(data), **{"Repr-Digest": f"sha-256=:{wrong}:"})
    response = await patch(client, url2, 0, data)
    assert response.status_code == 460
    assert (await client.head(url2, headers=TUS)).status_code == 404
    assert (await client.get("/v1/files/" + url2.rsplit("/", 1)[1])).status_code == 404


async def test_empty_upload_completes_at_creation(client: httpx.AsyncClient) -> None:
    url = await create(client, 0)
    download = await client.get("/v1/files/" + url.rsplit("/", 1)[1])
    assert download.status_code == 200
    assert download.content == b""


@pytest.mark.parametrize("upload_id", ["0" * 32, "nothing-here", "deleted"])
@pytest.mark.parametrize("method", ["PATCH", "HEAD", "DELETE"])
async def test_an_unknown_upload_is_404_with_a_json_error(
    client: httpx.AsyncClient, method: str, upload_id: str
) -> None:
    """Every tus error has a JSON body, an unknown upload included (a HEAD answer carries
    the same headers; the server drops its body)."""
    if upload_id == "deleted":
        url = await create(client, 10)
        assert (await client.delete(url, headers=TUS)).status_code == 204
    else:
        url = f"/v1/uploads/{upload_id}"
    headers = {**OCTETS, "Upload-Offset": "0"} if method == "PATCH" else TUS
    response = await client.request(method, url, headers=headers, content=b"abc")
    assert response.status_code == 404
    assert response.headers["tus-resumable"] == "1.0.0"
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) > 0
    if method == "HEAD":
        assert response.headers["cache-control"] == "no-store"
    else:
        error = response.json()["error"]
        assert error["type"] == "not_found" and "upload not found" in error["message"]


async def test_termination(client: httpx.AsyncClient, service: FilesService) -> None:
    url = await create(client, 100)
    await patch(client, url, 0, b"x" * 10)
    response = await client.delete(url, headers=TUS)
    assert response.status_code == 204
    assert (await client.head(url, headers=TUS)).status_code == 404
    assert (await client.delete(url, headers=TUS)).status_code == 404
    assert list(service.storage.tus_dir.iterdir()) == []


async def test_interrupted_patch_keeps_received_bytes_and_resumes(
    client: httpx.AsyncClient, service: FilesService
) -> None:
    data = os.urandom(3_000_000)
    url = await create(client, len(data))
    app = make_app(service)
    pieces = [data[:700_000], data[700_000:1_500_000]]  # then the client vanishes

    async def receive() -> dict[str, Any]:
        if pieces:
            return {"type": "http.request", "body": pieces.pop(0), "more_body": True}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    headers = {**OCTETS, "Upload-Offset": "0", "Content-Length": str(len(data))}
    with anyio.fail_after(10):
        await app(http_scope("PATCH", url, headers=headers.items()), receive, send)
    head = await client.head(url, headers=TUS)
    assert head.headers["upload-offset"] == "1500000"
    rest = await patch(client, url, 1_500_000, data[1_500_000:])
    assert rest.status_code == 204
    download = await client.get("/v1/files/" + url.rsplit("/", 1)[1])
    assert download.content == data


async def test_head_supersedes_a_stalled_patch(
    client: httpx.AsyncClient, service: FilesService
) -> None:
    """A PATCH whose client vanished silently is cancelled by the next HEAD, which reports
    the offset after the stalled request saved its bytes."""
    data = os.urandom(400_000)
    url = await create(client, len(data))
    app = make_app(service)
    stalled = StalledClient(data[:123_456])
    responses = stalled.sent
    headers = {**OCTETS, "Upload-Offset": "0"}
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            scope = http_scope("PATCH", url, headers=headers.items())
            group.start_soon(app, scope, stalled.receive, stalled.send)
            await stalled.taken.wait()
            head = await client.head(url, headers=TUS)
            assert head.headers["upload-offset"] == "123456"
            group.cancel_scope.cancel()
    assert responses[0]["status"] == 204  # the superseded PATCH answered with its offset
    rest = await patch(client, url, 123_456, data[123_456:])
    assert rest.status_code == 204
    assert (await client.get("/v1/files/" + url.rsplit("/", 1)[1])).content == data


async def test_resume_in_a_new_process_recomputes_the_hash(
    client: httpx.AsyncClient, service: FilesService
) -> None:
    data = os.urandom(100_000)
    url = await create(client, len(data))
    await patch(client, url, 0, data[:40_000])
    # a restarted server: fresh TusUploads without the running hash
    service.tus = TusUploads(service.storage, service.settings, service.log)
    assert (await patch(client, url, 40_000, data[40_000:])).status_code == 204
    download = await client.get("/v1/files/" + url.rsplit("/", 1)[1])
    assert download.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'


async def test_expired_uploads_are_purged(client: httpx.AsyncClient, service: FilesService) -> None:
    stale = await create(client, 100)
    done = await create(client, 3)
    await patch(client, done, 0, b"abc")
    later = time.time() + service.settings.tus_expire_after + 10
    assert service.tus.purge_expired(now=later) == 2
    assert (await client.head(stale, headers=TUS)).status_code == 404
    assert list(service.storage.tus_dir.iterdir()) == []
    # the completed file itself stays
    assert (await client.get("/v1/files/" + done.rsplit("/", 1)[1])).content == b"abc"


def test_parse_upload_metadata() -> None:
    assert parse_upload_metadata(f"filename {b64('a b')},flag, x {b64('ü')}", 1000) == {
        "filename": "a b",
        "flag": None,
        "x": "ü",
    }
    assert parse_upload_metadata(None, 10) == {}


async def test_stalled_patch_keeps_what_arrived(
    client: httpx.AsyncClient, service: FilesService
) -> None:
    service.settings.upload_idle_timeout = 0.2
    url = await create(client, 100_000)
    app = make_app(service)
    stalled = StalledClient(b"x" * 4321)
    with anyio.fail_after(10):
        headers = {**OCTETS, "Upload-Offset": "0"}
        await app(http_scope("PATCH", url, headers=headers.items()), stalled.receive, stalled.send)
    sent = stalled.sent
    assert sent[0]["status"] == 408
    assert (b"upload-offset", b"4321") in sent[0]["headers"]
    assert (await client.head(url, headers=TUS)).headers["upload-offset"] == "4321"
