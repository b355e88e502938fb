"""Downloads: RFC 9110 ranges and conditional requests, header by header, over HTTP (ASGI)
and at the planning level; traversal and symlinks refused; disconnects; zero-copy paths."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.datastructures import Headers
from starlette.types import Scope

from mianzhang.files import (
    FileDownload,
    FileMeta,
    FilesService,
    Validators,
    format_http_date,
    new_file_id,
    plan_download,
)
from tests._support.asgi import http_scope

from .conftest import StoreFile

DATA = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable mod 256


def parse_byteranges(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """A strict multipart/byteranges parser (RFC 9110 §14.6, RFC 2046 delimiters)."""
    delimiter = b"--" + boundary.encode()
    assert body.startswith(delimiter + b"\r\n")
    assert body.endswith(b"\r\n" + delimiter + b"--\r\n")
    inner = body[len(delimiter) + 2 : -(len(delimiter) + 6)]
    parts = []
    for chunk in inner.split(b"\r\n" + delimiter + b"\r\n"):
        head, _, content = chunk.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append(({k.lower(): v for k, v in headers.items()}, content))
    return parts


# -- over HTTP ----------------------------------------------------------------------------------
async def test_full_download_headers(client: httpx.AsyncClient, store_file: StoreFile) -> None:
    meta = store_file(DATA, name="résumé.txt", content_type="text/plain")
    response = await client.get(f"/v1/files/{meta.id}")
    assert response.status_code == 200
    assert response.content == DATA
    h = response.headers
    assert h["content-length"] == str(len(DATA))
    assert h["accept-ranges"] == "bytes"
    assert h["etag"] == f'"{meta.sha256}"'
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", h["last-modified"])
    assert h["content-type"] == "text/plain"
    assert h["content-disposition"] == (
        "attachment; filename=\"resume.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
    )
    assert h["x-content-type-options"] == "nosniff"
    digest = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    assert h["repr-digest"] == f"sha-256=:{digest}:"
    assert "content-range" not in h


async def test_head_has_get_headers_and_no_body(
    client: httpx.AsyncClient, store_file: StoreFile
) -> None:
    meta = store_file(DATA)
    get = await client.get(f"/v1/files/{meta.id}")
    head = await client.head(f"/v1/files/{meta.id}")
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-length", "etag", "last-modified", "content-type", "accept-ranges"):
        assert head.headers[name] == get.headers[name]


async def test_head_ignores_range(client: httpx.AsyncClient, store_file: StoreFile) -> None:
    # RFC 9110 §14.2: range handling is defined for GET only.
    meta = store_file(DATA)
    head = await client.head(f"/v1/files/{meta.id}", headers={"Range": "bytes=0-9"})
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(DATA))


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=100-4999", 100, 4999),
        ("bytes=10000-", 10000, 10239),
        ("bytes=-240", 10000, 10239),
        ("bytes=10200-99999", 10200, 10239),
    ],
)
async def test_single_range(
    client: httpx.AsyncClient, store_file: StoreFile, range_header: str, start: int, end: int
) -> None:
    meta = store_file(DATA)
    response = await client.get(f"/v1/files/{meta.id}", headers={"Range": range_header})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["etag"] == f'"{meta.sha256}"'
    assert response.content == DATA[start : end + 1]


async def test_multiple_ranges(client: httpx.AsyncClient, store_file: StoreFile) -> None:
    meta = store_file(DATA, content_type="application/pdf")
    response = await client.get(
        f"/v1/files/{meta.id}", headers={"Range": "bytes=9000-9009, 0-4, 2-6, -3, 500-500"}
    )
    assert response.status_code == 206
    content_type = response.headers["content-type"]
    match = re.fullmatch(r"multipart/byteranges; boundary=([0-9a-f]{32})", content_type)
    assert match is not None
    assert "content-range" not in response.headers
    assert response.headers["content-length"] == str(len(response.content))
    parts = parse_byteranges(response.content, match.group(1))
    expected = [(0, 6), (500, 500), (9000, 9009), (10237, 10239)]  # sorted and coalesced
    assert len(parts) == len(expected)
    for (headers, content), (start, end) in zip(parts, expected, strict=True):
        assert headers["content-type"] == "application/pdf"
        assert headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
        assert content == DATA[start : end + 1]


async def test_overlapping_ranges_coalesce_to_one_part(
    client: httpx.AsyncClient, store_file: StoreFile
) -> None:
    meta = store_file(DATA)
    response = await client.get(f"/v1/files/{meta.id}", headers={"Range": "bytes=5-9,0-5,10-19"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 0-19/{len(DATA)}"
    assert response.content == DATA[:20]


async def test_unsatisfiable_range(client: httpx.AsyncClient, store_file: StoreFile) -> None:
    meta = store_file(DATA)
    response = await client.get(f"/v1/files/{meta.id}", headers={"Range": "bytes=20000-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"
    assert response.json()["error"]["type"] == "range_not_satisfiable"


@pytest.mark.parametrize("range_header", ["bytes=5-1", "pages=1-2", "bytes=x"])
async def test_invalid_range_is_ignored(
    client: httpx.AsyncClient, store_file: StoreFile, range_header: str
) -> None:
    meta = store_file(DATA)
    response = await client.get(f"/v1/files/{meta.id}", headers={"Range": range_header})
    assert response.status_code == 200
    assert response.content == DATA


async def test_too_many_ranges_send_the_whole_file(
    client: httpx.AsyncClient, store_file: StoreFile
) -> None:
    meta = store_file(DATA)
    header = "bytes=" + ",".join(f"{3 * i}-{3 * i}" for i in range(101))
    response = await client.get(f"/v1/files/{meta.id}", headers={"Range": header})
    assert response.status_code == 200
    assert response.content == DATA
    header = "bytes=" + ",".join(f"{3 * i}-{3 * i}" for i in range(100))
    response = await client.get(f"/v1/files/{meta.id}", headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["content-type"].startswith("multipart/byteranges")


async def test_thousands_of_adjacent_ranges_are_one_part(
    client: httpx.AsyncClient, store_file: StoreFile
) -> None:
    meta = store_file(DATA)
    header = "bytes=" + ",".join(f"{i}-{i}" for i in reversed(range(3000)))
    response = await client.get(f"/v1/files/{meta.id}", headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 0-2999/{len(DATA)}"
    assert response.content == DATA[:3000]


async def test_if_range(client: httpx.AsyncClient, store_file: StoreFile) -> None:
    meta = store_file(DATA)
    url = f"/v1/files/{meta.id}"
    first = await client.get(url)
    etag, last_modified = first.headers["etag"], first.headers["last-modified"]
    for validator in (etag, last_modified):
        ok = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": validator})
        assert ok.status_code == 206, validator
        assert ok.content == DATA[:10]
    for stale in ('"other"', f"W/{etag}", "Mon, 01 Jan 2001 00:00:00 GMT"):
        full = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": stale})
        assert full.status_code == 200, stale
        assert full.content == DATA


async def test_not_modified(client: httpx.AsyncClient, store_file: StoreFile) -> None:
    meta = store_file(DATA)
    url = f"/v1/files/{meta.id}"
    first = await client.get(url)
    etag, last_modified = first.headers["etag"], first.headers["last-modified"]
    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"x", W/{etag}'},
        {"If-None-Match": "*"},
        {"If-Modified-Since": last_modified},
    ):
        response = await client.get(url, headers=headers)
        assert response.status_code == 304, headers
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["last-modified"] == last_modified
        assert "content-length" not in response.headers
    head = await client.head(url, headers={"If-None-Match": etag})
    assert head.status_code == 304
    # modified since an earlier date: a normal 200
    earlier = await client.get(url, headers={"If-Modified-Since": format_http_date(0)})
    assert earlier.status_code == 200


async def test_precondition_failed(client: httpx.AsyncClient, store_file: StoreFile) -> None:
    meta = store_file(DATA)
    url = f"/v1/files/{meta.id}"
    for headers in (
        {"If-Match": '"other"'},
        {"If-Match": f'W/"{meta.sha256}"'},
        {"If-Unmodified-Since": format_http_date(0)},
        {"If-Match": '"other"', "If-None-Match": f'"{meta.sha256}"'},
    ):
        response = await client.get(url, headers=headers)
        assert response.status_code == 412, headers
        assert response.json()["error"]["type"] == "precondition_failed"
    matching = await client.get(url, headers={"If-Match": f'"{meta.sha256}"', "Range": "bytes=1-1"})
    assert matching.status_code == 206


async def test_empty_file(client: httpx.AsyncClient, store_file: StoreFile) -> None:
    meta = store_file(b"")
    url = f"/v1/files/{meta.id}"
    full = await client.get(url)
    assert (full.status_code, full.content, full.headers["content-length"]) == (200, b"", "0")
    suffix = await client.get(url, headers={"Range": "bytes=-5"})
    assert suffix.status_code == 200
    unsatisfiable = await client.get(url, headers={"Range": "bytes=0-0"})
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["content-range"] == "bytes */0"


# -- ids, traversal, symlinks -------------------------------------------------------------------
@pytest.mark.parametrize(
    "file_id",
    [
        "nothere",
        "0" * 31,
        "A" * 32,
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        ".tmp",
        "0" * 32 + ".json",
    ],
)
async def test_not_an_id_is_not_found(client: httpx.AsyncClient, file_id: str) -> None:
    response = await client.get(f"/v1/files/{file_id}")
    assert response.status_code == 404  # ours, or the router's when "/" was decoded


async def test_unknown_id_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/files/{new_file_id()}")
    assert response.status_code == 404


async def test_symlinks_are_refused(
    client: httpx.AsyncClient, service: FilesService, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    link_id = new_file_id()
    os.symlink(secret, service.storage.root / link_id)
    assert (await client.get(f"/v1/files/{link_id}")).status_code == 404
    dir_id = new_file_id()
    (service.storage.root / dir_id).mkdir()
    assert (await client.get(f"/v1/files/{dir_id}")).status_code == 404


async def test_storage_symlinked_root_is_resolved_once(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    from mianzhang.files import FileStorage

    storage = FileStorage(tmp_path / "link")
    assert storage.root == real.resolve()


# -- planning, without HTTP ---------------------------------------------------------------------
def test_plan_content_length_matches_parts() -> None:
    plan = plan_download(
        "GET",
        Headers({"range": "bytes=0-0,5-9"}),
        size=100,
        validators=Validators('"t"', 0),
        boundary="B",
    )
    assert plan.status == 206
    assert dict(plan.headers)["content-type"] == "multipart/byteranges; boundary=B"
    assert (
        plan.parts[0].prefix == b"--B\r\ncontent-type: application/octet-stream\r\n"
        b"content-range: bytes 0-0/100\r\n\r\n"
    )
    assert plan.parts[1].prefix.startswith(b"\r\n--B\r\n")
    assert plan.trailer == b"\r\n--B--\r\n"
    assert int(dict(plan.headers)["content-length"]) == plan.content_length


def test_plan_for_post_is_not_ranged() -> None:
    plan = plan_download(
        "POST", Headers({"range": "bytes=0-0"}), size=10, validators=Validators('"t"', 0)
    )
    assert plan.status == 200


# -- the ASGI response itself: disconnects, zero-copy ---------------------------------------------
class Recorder:
    def __init__(self, disconnect_after: int | None = None) -> None:
        self.messages: list[dict[str, Any]] = []
        self.disconnect_after = disconnect_after
        self.body_sent = anyio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.body":
            if self.disconnect_after is not None and len(self.messages) > self.disconnect_after:
                self.body_sent.set()
            await anyio.lowlevel.checkpoint()

    async def receive(self) -> dict[str, Any]:
        if self.disconnect_after is None:
            await anyio.sleep_forever()
        await self.body_sent.wait()
        return {"type": "http.disconnect"}

    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"
        )


def scope(
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    extensions: dict[str, Any] | None = None,
    spec_version: str = "2.3",
) -> Scope:
    """An HTTP scope offering ``extensions``, of ASGI spec ``spec_version``."""
    return http_scope(
        method,
        headers=headers or [],
        extensions=extensions or {},
        asgi={"version": "3.0", "spec_version": spec_version},
    )


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_disconnect_stops_the_transfer_and_closes_the_file(
    service: FilesService, store_file: StoreFile
) -> None:
    big = os.urandom(64 * 4096)
    meta = store_file(big)
    before = open_fds()
    response = FileDownload(service.storage, meta.id, chunk_size=4096)
    recorder = Recorder(disconnect_after=3)
    with anyio.fail_after(10):
        await response(scope(), recorder.receive, recorder.send)  # type: ignore[arg-type]
    bodies = [m for m in recorder.messages if m["type"] == "http.response.body"]
    assert 2 <= len(bodies) < 64
    assert bodies[-1]["more_body"] is True  # cut off: the final message was never sent
    assert open_fds() == before


async def test_chunks_are_bounded_by_chunk_size(
    service: FilesService, store_file: StoreFile
) -> None:
    data = os.urandom(50_000)
    meta = store_file(data)
    recorder = Recorder()
    response = FileDownload(service.storage, meta.id, chunk_size=4096)
    with anyio.fail_after(10):  # returns once the last chunk is sent (listener cancelled)
        await response(scope(), recorder.receive, recorder.send)  # type: ignore[arg-type]
    assert recorder.messages[-1]["more_body"] is False
    assert recorder.body() == data
    sizes = [len(m["body"]) for m in recorder.messages if m["type"] == "http.response.body"]
    assert max(sizes) == 4096


async def test_zerocopysend_extension_is_used(service: FilesService, store_file: StoreFile) -> None:
    meta = store_file(DATA)
    sent: list[bytes] = []
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.zerocopysend":
            sent.append(os.pread(message["file"].fileno(), message["count"], message["offset"]))
        elif message["type"] == "http.response.body":
            sent.append(message["body"])

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    headers = [("range", "bytes=0-9,100-199")]
    s = scope(headers=headers, extensions={"http.response.zerocopysend": {}}, spec_version="2.4")
    with anyio.fail_after(10):
        await FileDownload(service.storage, meta.id)(s, receive, send)  # type: ignore[arg-type]
    assert [m["type"] for m in messages].count("http.response.zerocopysend") == 2
    start = messages[0]
    boundary = dict(start["headers"])[b"content-type"].decode().split("boundary=")[1]
    parts = parse_byteranges(b"".join(sent), boundary)
    assert [content for _, content in parts] == [DATA[0:10], DATA[100:200]]


async def test_pathsend_extension_for_full_responses(
    service: FilesService, store_file: StoreFile
) -> None:
    meta = store_file(DATA)
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    s = scope(extensions={"http.response.pathsend": {}}, spec_version="2.4")
    await FileDownload(service.storage, meta.id)(s, receive, send)  # type: ignore[arg-type]
    assert messages[1] == {
        "type": "http.response.pathsend",
        "path": str(service.storage.data_path(meta.id)),
    }


async def test_missing_sidecar_still_serves_with_stat_etag(
    client: httpx.AsyncClient, service: FilesService, store_file: StoreFile
) -> None:
    meta: FileMeta = store_file(DATA)
    service.storage.meta_path(meta.id).unlink()
    response = await client.get(f"/v1/files/{meta.id}")
    assert response.status_code == 200
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"', response.headers["etag"])
    assert "repr-digest" not in response.headers
    assert response.headers["content-disposition"] == f'attachment; filename="{meta.id}"'


@pytest.mark.parametrize(
    "failure", [BlockingIOError(11, "not cached"), OSError(95, "not supported")]
)
async def test_uncached_reads_go_to_a_thread(
    client: httpx.AsyncClient,
    store_file: StoreFile,
    monkeypatch: pytest.MonkeyPatch,
    failure: OSError,
) -> None:
    """preadv(RWF_NOWAIT) refusing (data not in the page cache, or no support): the same
    bytes come from the worker-thread read instead."""
    calls: list[int] = []

    def refusing_preadv(fd: int, buffers: list[bytearray], offset: int, flags: int = 0) -> int:
        calls.append(flags)
        raise failure

    monkeypatch.setattr(os, "preadv", refusing_preadv)
    meta = store_file(DATA)
    response = await client.get(f"/v1/files/{meta.id}", headers={"Range": "bytes=1-100,5000-"})
    assert response.status_code == 206
    assert DATA[1:101] in response.content and DATA[5000:] in response.content
    # BlockingIOError: tried for every chunk; "not supported": tried once, then never again
    assert len(calls) == (2 if isinstance(failure, BlockingIOError) else 1)
