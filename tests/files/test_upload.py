"""Streaming uploads (raw body and multipart/form-data): stored atomically, hashed, verified,
size-limited while streaming; refused or interrupted uploads leave nothing behind."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import itertools
import json
import os
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
import httpx
import pytest

from mianzhang._errors import UploadStalled
from mianzhang.files import FilesService, FilesSettings, FilesStats, limited_body, progress_stream
from mianzhang.log import MemoryEventLog
from tests._support.asgi import StalledClient, http_scope

from .conftest import make_app


def stored_ids(service: FilesService) -> list[str]:
    return sorted(p.name for p in service.storage.root.iterdir() if not p.name.startswith("."))


def assert_nothing_kept(service: FilesService) -> None:
    assert stored_ids(service) == []
    assert service.storage.temp_count() == 0


def b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


# -- raw bodies ---------------------------------------------------------------------------------
async def test_raw_upload_round_trip(client: httpx.AsyncClient, service: FilesService) -> None:
    data = os.urandom(300_000)
    response = await client.post(
        "/v1/files",
        params={"name": "../../etc/report.bin"},
        content=data,
        headers={"Content-Type": "application/x-thing; v=1"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["name"] == "report.bin"  # metadata only, last path component
    assert body["content_type"] == "application/x-thing"
    assert body["url"] == f"/v1/files/{body['id']}"
    assert response.headers["location"] == body["url"]
    assert response.headers["repr-digest"] == f"sha-256=:{b64sha(data)}:"
    assert stored_ids(service) == sorted([body["id"], body["id"] + ".json"])
    assert service.storage.temp_count() == 0
    download = await client.get(body["url"])
    assert download.content == data
    assert download.headers["etag"] == f'"{body["sha256"]}"'
    meta = await client.get(f"{body['url']}/meta")
    assert meta.json()["name"] == "report.bin"
    listing = await client.get("/v1/files")
    assert [f["id"] for f in listing.json()["files"]] == [body["id"]]


async def test_raw_upload_streamed_without_length(
    client: httpx.AsyncClient, service: FilesService
) -> None:
    data = os.urandom(100_000)
    response = await client.post(
        "/v1/files",
        content=chunks(data),
        headers={"Content-Disposition": "attachment; filename*=UTF-8''%E7%AE%80%E5%8E%86.txt"},
    )
    assert response.status_code == 201
    assert response.json()["name"] == "简历.txt"
    assert response.json()["content_type"] == "application/octet-stream"
    assert (await client.get(response.json()["url"])).content == data


@pytest.mark.parametrize(
    "headers",
    [
        lambda d: {"Repr-Digest": f"sha-256=:{b64sha(d)}:"},
        lambda d: {"Repr-Digest": f"sha-512=:AAAA:, sha-256=:{b64sha(d)}:"},
        lambda d: {"Content-Digest": f"sha-256=:{b64sha(d)}:"},
        lambda d: {"X-Checksum-Sha256": hashlib.sha256(d).hexdigest().upper()},
    ],
)
async def test_matching_checksum_is_accepted(client: httpx.AsyncClient, headers: Any) -> None:
    data = b"checked bytes"
    response = await client.post("/v1/files", content=data, headers=headers(data))
    assert response.status_code == 201


@pytest.mark.parametrize(
    "headers",
    [
        {"Repr-Digest": f"sha-256=:{b64sha(b'other')}:"},
        {"X-Checksum-Sha256": hashlib.sha256(b"other").hexdigest()},
        {"Repr-Digest": "sha-256=notbytes"},
        {"Repr-Digest": "sha-256=:!!!:"},
        {"Repr-Digest": "sha-256=:AAAA:"},  # not 32 bytes
        {"X-Checksum-Sha256": "abc"},
        {
            "Repr-Digest": f"sha-256=:{b64sha(b'checked bytes')}:",
            "X-Checksum-Sha256": hashlib.sha256(b"other").hexdigest(),
        },  # disagree
    ],
)
async def test_bad_checksum_is_400_and_nothing_kept(
    client: httpx.AsyncClient, service: FilesService, headers: dict[str, str]
) -> None:
    response = await client.post("/v1/files", content=b"checked bytes", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"
    assert_nothing_kept(service)


@pytest.fixture
def small_limit(settings: FilesSettings) -> FilesSettings:
    return settings.model_copy(update={"max_upload_size": 10_000})


@pytest.fixture
async def limited(
    small_limit: FilesSettings, log: MemoryEventLog
) -> AsyncIterator[tuple[httpx.AsyncClient, FilesService]]:
    service = FilesService(small_limit, log)
    transport = httpx.ASGITransport(app=make_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http, service


async def test_declared_length_over_limit_is_413_before_reading(
    limited: tuple[httpx.AsyncClient, FilesService],
) -> None:
    client, service = limited
    consumed = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal consumed
        for _ in range(20):
            consumed += 1000
            yield b"x" * 1000

    response = await client.post("/v1/files", content=body(), headers={"Content-Length": "20000"})
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    assert response.json()["error"]["type"] == "payload_too_large"
    assert consumed <= 1000  # at most what the transport pre-read: the server read nothing
    assert_nothing_kept(service)


async def test_streamed_body_over_limit_is_413_and_nothing_kept(
    limited: tuple[httpx.AsyncClient, FilesService], log: MemoryEventLog
) -> None:
    client, service = limited
    response = await client.post("/v1/files", content=chunks(b"y" * 10_001, 999))
    assert response.status_code == 413
    assert_nothing_kept(service)
    # progress subscribers were told
    streams = [name for name in log._streams if name.startswith("upload:")]
    assert len(streams) == 1
    _, events = await log.read(streams[0])
    assert json.loads(events[-1].data)["state"] == "failed"


async def test_body_exactly_at_limit_is_accepted(
    limited: tuple[httpx.AsyncClient, FilesService],
) -> None:
    client, _ = limited
    response = await client.post("/v1/files", content=chunks(b"z" * 10_000, 999))
    assert response.status_code == 201


async def test_invalid_content_length_is_400(client: httpx.AsyncClient) -> None:
    request = client.build_request("POST", "/v1/files", content=b"abc")
    request.headers["Content-Length"] = "-3"
    response = await client.send(request)
    assert response.status_code == 400


# -- interrupted uploads --------------------------------------------------------------------------
async def call_with_disconnect(
    service: FilesService,
    headers: list[tuple[bytes, bytes]],
    pieces: list[bytes],
    path: str = "/v1/files",
    method: str = "POST",
) -> list[dict[str, Any]]:
    """Drive the app directly: send ``pieces`` as body chunks, then a disconnect."""
    app = make_app(service)
    queue = list(pieces)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if queue:
            return {"type": "http.request", "body": queue.pop(0), "more_body": True}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    text_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
    scope = http_scope(method, path, headers=text_headers)
    with anyio.fail_after(10):
        await app(scope, receive, send)
    return sent


async def test_raw_upload_interrupted_leaves_nothing(
    service: FilesService, log: MemoryEventLog
) -> None:
    await call_with_disconnect(
        service, [(b"content-length", b"5000000")], [os.urandom(700_000), os.urandom(700_000)]
    )
    assert_nothing_kept(service)
    (stream,) = [name for name in log._streams if name.startswith("upload:")]
    _, events = await log.read(stream)
    states = [json.loads(e.data)["state"] for e in events]
    assert states[0] == "receiving" and states[-1] == "failed"


async def test_multipart_upload_interrupted_leaves_nothing(service: FilesService) -> None:
    boundary = b"XyZ"
    head = (
        b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
    )
    await call_with_disconnect(
        service,
        [(b"content-type", b"multipart/form-data; boundary=" + boundary)],
        [head, os.urandom(1_500_000)],
    )
    assert_nothing_kept(service)


async def test_cancelled_upload_leaves_nothing(service: FilesService) -> None:
    """A request cancelled mid-body (server shutdown) removes its temporary file."""
    app = make_app(service)
    stalled = StalledClient(b"a" * 2_000_000)
    scope = http_scope("POST", "/v1/files")
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(app, scope, stalled.receive, stalled.send)
            await stalled.taken.wait()
            assert service.storage.temp_count() == 1  # created before the body is read
            group.cancel_scope.cancel()
    assert stalled.sent == []  # no response
    assert_nothing_kept(service)


# -- multipart ------------------------------------------------------------------------------------
async def test_multipart_files_are_stored(client: httpx.AsyncClient, service: FilesService) -> None:
    one, two = os.urandom(200_000), b"second file"
    response = await client.post(
        "/v1/files",
        data={"comment": "hello"},
        files=[
            ("file", ("../../evil/one.bin", one, "application/octet-stream")),
            ("file", ("zwei.txt", two, "text/plain; charset=utf-8")),
        ],
    )
    assert response.status_code == 201, response.text
    files = response.json()["files"]
    assert [f["name"] for f in files] == ["one.bin", "zwei.txt"]
    assert [f["content_type"] for f in files] == ["application/octet-stream", "text/plain"]
    assert [f["sha256"] for f in files] == [
        hashlib.sha256(one).hexdigest(),
        hashlib.sha256(two).hexdigest(),
    ]
    assert (await client.get(files[0]["url"])).content == one
    assert (await client.get(files[1]["url"])).content == two
    assert service.storage.temp_count() == 0


def multipart(parts: list[tuple[list[str], bytes]], boundary: str = "BOUNDARY") -> bytes:
    out = b""
    for headers, content in parts:
        out += f"--{boundary}\r\n".encode() + "".join(f"{h}\r\n" for h in headers).encode()
        out += b"\r\n" + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


FILE_HEADER = 'Content-Disposition: form-data; name="f"; filename="a.txt"'
FIELD_HEADER = 'Content-Disposition: form-data; name="x"'


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (multipart([([FIELD_HEADER], b"v")]), None, "no file"),
        (multipart([([FILE_HEADER], b"v")])[:-12], None, "closing boundary"),
        (multipart([([FIELD_HEADER], b"v")] * 70), None, "parts"),
        (multipart([([FILE_HEADER], b"v")] * 17), None, "files"),
        (multipart([([FIELD_HEADER], b"v" * 70_000), ([FILE_HEADER], b"v")]), None, "field"),
        (multipart([([FILE_HEADER] + ["X-A: 1"] * 10, b"v")]), None, "header"),
        (multipart([([FILE_HEADER, "X-A: " + "a" * 5000], b"v")]), None, "header"),
        (multipart([(["Content-Type: text/plain"], b"v")]), None, "Content-Disposition"),
        (
            multipart([([FILE_HEADER], b"v")], "b" * 71),
            "multipart/form-data; boundary=" + "b" * 71,
            "boundary",
        ),
        (b"", "multipart/form-data", "boundary"),
        (b"", 'multipart/form-data; boundary="a\r"', "boundary"),
        (b"garbage without boundary", None, "malformed"),
    ],
)
async def test_multipart_limits_and_errors(
    client: httpx.AsyncClient,
    service: FilesService,
    body: bytes,
    content_type: str | None,
    message: str,
) -> None:
    response = await client.post(
        "/v1/files",
        content=body,
        headers={"Content-Type": content_type or "multipart/form-data; boundary=BOUNDARY"},
    )
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]
    assert_nothing_kept(service)


async def test_multipart_over_limit_is_413_and_nothing_kept(
    limited: tuple[httpx.AsyncClient, FilesService],
) -> None:
    client, service = limited
    body = multipart([([FILE_HEADER], b"a" * 6000), ([FILE_HEADER], b"b" * 6000)])
    response = await client.post(
        "/v1/files",
        content=chunks(body, 1000),
        headers={"Content-Type": "multipart/form-data; boundary=BOUNDARY"},
    )
    assert response.status_code == 413
    assert_nothing_kept(service)


async def test_empty_browser_file_input_is_skipped(client: httpx.AsyncClient) -> None:
    body = multipart(
        [
            (['Content-Disposition: form-data; name="f"; filename=""'], b""),
            ([FILE_HEADER], b"real"),
        ]
    )
    response = await client.post(
        "/v1/files",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=BOUNDARY"},
    )
    assert response.status_code == 201
    assert [f["name"] for f in response.json()["files"]] == ["a.txt"]


async def test_delete(client: httpx.AsyncClient, service: FilesService) -> None:
    created = (await client.post("/v1/files", content=b"bye")).json()
    assert (await client.delete(created["url"])).status_code == 204
    assert (await client.delete(created["url"])).status_code == 404
    assert (await client.get(created["url"])).status_code == 404
    assert_nothing_kept(service)


async def test_progress_events_are_throttled_and_final(
    service: FilesService, log: MemoryEventLog
) -> None:
    service.settings.progress_interval = 0.0  # only the 1 % step throttles
    transport = httpx.ASGITransport(app=make_app(service))
    data = os.urandom(1_000_000)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post(
            "/v1/files", content=chunks(data, 1000), headers={"Content-Length": str(len(data))}
        )
    file_id = response.json()["id"]
    assert response.json()["progress_stream"] == progress_stream(file_id)
    _, events = await log.read(progress_stream(file_id))
    payloads = [json.loads(e.data) for e in events]
    assert payloads[0] == {"id": file_id, "state": "receiving", "received": 0, "total": len(data)}
    assert payloads[-1]["state"] == "complete"
    assert payloads[-1]["sha256"] == hashlib.sha256(data).hexdigest()
    assert payloads[-1]["url"] == f"/v1/files/{file_id}"
    # 1000 chunks but at most one event per 1 %: <= 100 progress events + start + end
    assert len(payloads) <= 102
    received = [p["received"] for p in payloads]
    assert received == sorted(received)
    # every "receiving" event is at least 1 % (10 000 bytes) after the previous one
    assert all(b - a >= 10_000 for a, b in itertools.pairwise(received[:-1]))
    info = await log.info(progress_stream(file_id))
    assert info is not None and info.state == "closed"


async def test_stalled_upload_is_cut_with_408_and_nothing_kept(
    settings: FilesSettings, log: MemoryEventLog
) -> None:
    """A client that sends a little and then nothing (slow loris) is cut after
    ``upload_idle_timeout`` seconds of silence."""
    service = FilesService(settings.model_copy(update={"upload_idle_timeout": 0.2}), log)
    app = make_app(service)
    stalled = StalledClient(b"x" * 1000)
    scope = http_scope("POST", "/v1/files")
    with anyio.fail_after(10):
        await app(scope, stalled.receive, stalled.send)
    sent = stalled.sent
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert_nothing_kept(service)


# -- the body deadline (slowloris) ---------------------------------------------------------------
async def paced(pieces: list[tuple[float, bytes]]) -> AsyncIterator[bytes]:
    """A client body: each piece after waiting its delay (the client's pace, not a sync)."""
    for delay, piece in pieces:
        await anyio.sleep(delay)
        yield piece


async def test_trickling_body_is_cut_at_the_first_window() -> None:
    # 1 byte every 20 ms is ~25 bytes a 0.5 s window; 1000 B/s asks for 500.
    body = paced([(0.02, b"x")] * 1000)
    received = 0
    with anyio.fail_after(10), pytest.raises(UploadStalled) as caught:
        async with aclosing(limited_body(body, window=0.5, min_rate=1000)) as limited:
            async for chunk in limited:
                received += len(chunk)
    assert caught.value.min_bytes == 500
    assert 0 < received < 500
    assert caught.value.status_code == 408


async def test_a_pause_after_a_full_window_does_not_end_the_body() -> None:
    """A window that already had its bytes lets the next wait last until the end of the
    following window, and the wait is never cancelled while the body goes on (cancelling
    ``anext`` would end the body generator: a truncated upload taken for a complete one)."""
    pieces = [(0.0, b"a" * 1000), (0.6, b"b" * 1000), (0.0, b"c" * 10)]
    with anyio.fail_after(10):
        async with aclosing(limited_body(paced(pieces), window=0.5, min_rate=1000)) as limited:
            got = [chunk async for chunk in limited]
    assert got == [b"a" * 1000, b"b" * 1000, b"c" * 10]


async def test_silence_is_cut_even_without_a_rate() -> None:
    pieces = [(0.0, b"a"), (30.0, b"b")]
    with anyio.fail_after(10), pytest.raises(UploadStalled) as caught:
        async with aclosing(limited_body(paced(pieces), window=0.3, min_rate=0)) as limited:
            async for _ in limited:
                pass
    assert caught.value.min_bytes == 1


async def test_body_bytes_are_counted_in_stats() -> None:
    stats = FilesStats()
    async with aclosing(limited_body(chunks(b"z" * 4500), window=5, stats=stats)) as limited:
        assert b"".join([chunk async for chunk in limited]) == b"z" * 4500
    assert stats.upload_bytes == 4500


# -- PUT ----------------------------------------------------------------------------------------
async def test_put_with_a_name_in_the_url(client: httpx.AsyncClient, service: FilesService) -> None:
    data = os.urandom(70_000)
    response = await client.put("/v1/files/report%20%C3%BC.csv", content=data)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "report ü.csv"  # metadata only
    assert response.headers["location"] == f"/v1/files/{body['id']}"
    assert body["id"] != "report ü.csv" and stored_ids(service) == sorted(
        [body["id"], body["id"] + ".json"]
    )
    download = await client.get(response.headers["location"])
    assert download.content == data
    assert "filename*=UTF-8''report%20%C3%BC.csv" in download.headers["content-disposition"]


async def test_put_traversal_names_stay_metadata(
    client: httpx.AsyncClient, service: FilesService
) -> None:
    for target in ("/v1/files/..%5C..%5Cescape.txt", "/v1/files?name=../../escape.txt"):
        response = await client.put(target, content=b"data")
        assert response.status_code == 201, (target, response.text)
        assert response.json()["name"] == "escape.txt"
    # an encoded "/" is decoded before routing: no route matches, nothing is written
    refused = await client.put("/v1/files/..%2F..%2Fescape.txt", content=b"data")
    assert refused.status_code == 404
    assert not (service.storage.root.parent / "escape.txt").exists()
    assert all(not p.name.startswith("escape") for p in service.storage.root.rglob("*"))


async def test_put_stores_a_multipart_body_as_it_is(client: httpx.AsyncClient) -> None:
    raw = b'--b\r\nContent-Disposition: form-data; name="f"; filename="x"\r\n\r\nhi\r\n--b--\r\n'
    response = await client.put(
        "/v1/files/form.txt",
        content=raw,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 201, response.text
    assert (await client.get(response.headers["location"])).content == raw


async def test_put_checksum_mismatch_is_400_and_nothing_kept(
    client: httpx.AsyncClient, service: FilesService
) -> None:
    response = await client.put(
        "/v1/files/a.bin",
        content=b"abc" * 1000,
        headers={"Repr-Digest": f"sha-256=:{b64sha(b'other')}:"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"
    assert "mismatch" in response.json()["error"]["message"]
    assert_nothing_kept(service)


def test_python_multipart_is_past_its_cves() -> None:
    """CVE-2024-24762 (0.0.7), CVE-2024-53981 (0.0.18), CVE-2026-24486 (0.0.22) and
    CVE-2026-42561 (0.0.27, the part-header limits this module passes) are fixed."""
    version = tuple(int(x) for x in importlib.metadata.version("python-multipart").split(".")[:3])
    assert version >= (0, 0, 27)
