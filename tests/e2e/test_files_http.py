"""The file routes through a real uvicorn process, on the wire: ranged and conditional
downloads header by header; uploads refused early (413 while the client is still sending,
408 for a trickling client, 400 for a wrong checksum) leaving nothing behind; ``curl -T``."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._support.procs import ServerProcess, uvicorn_process
from tests._support.wait import eventually_sync

pytestmark = pytest.mark.e2e

APP = "tests.e2e.apps.files_app:create_app"
MiB = 1 << 20
DATA = bytes(range(256)) * 4096  # 1 MiB, every offset distinguishable mod 256


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    directory = tmp_path / "files"
    directory.mkdir()
    return directory


@pytest.fixture
def server(storage: Path) -> Iterator[ServerProcess]:
    env = {
        "MZ_FILES_DIR": str(storage),
        "MZ_FILES_MAX": str(2 * MiB),
        "MZ_FILES_WINDOW": "1",
        "MZ_FILES_MIN_RATE": "1000",
    }
    with uvicorn_process(APP, factory=True, env=env) as proc:
        yield proc


@pytest.fixture
def stored(server: ServerProcess) -> dict[str, str]:
    with httpx.Client(base_url=server.url) as http:
        response = http.put(
            "/v1/files/données.bin", content=DATA, headers={"Content-Type": "video/mp4"}
        )
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


def nothing_kept(storage: Path) -> bool:
    kept = [p for p in storage.iterdir() if not p.name.startswith(".")]
    return not kept and not any((storage / ".tmp").iterdir())


def read_response(sock: socket.socket, first: bytes = b"") -> tuple[bytes, bytes]:
    """(head, body) of one response with a Content-Length."""
    data = first
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    found = re.search(rb"content-length: (\d+)", head, re.I)
    length = int(found.group(1)) if found else 0
    while len(body) < length:
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return head, body


# -- downloads, header by header ------------------------------------------------------------------
def test_full_and_head(server: ServerProcess, stored: dict[str, str]) -> None:
    with httpx.Client(base_url=server.url) as http:
        get = http.get(stored["url"])
        head = http.head(stored["url"])
    digest = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    for response in (get, head):
        h = response.headers
        assert response.status_code == 200
        assert h["content-length"] == str(len(DATA))
        assert "transfer-encoding" not in h  # a known length, never chunked
        assert h["accept-ranges"] == "bytes"
        assert h["etag"] == f'"{stored["sha256"]}"'
        assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", h["last-modified"])
        assert h["content-type"] == "video/mp4"
        assert h["content-disposition"] == (
            "attachment; filename=\"donnees.bin\"; filename*=UTF-8''donn%C3%A9es.bin"
        )
        assert h["repr-digest"] == f"sha-256=:{digest}:"
        assert h["x-content-type-options"] == "nosniff"
        assert "content-range" not in h
    assert get.content == DATA
    assert head.content == b""


def test_single_range_and_suffix(server: ServerProcess, stored: dict[str, str]) -> None:
    size = len(DATA)
    with httpx.Client(base_url=server.url) as http:
        for header, start, end in (
            ("bytes=1000-1999", 1000, 1999),
            ("bytes=-10", size - 10, size - 1),
            ("bytes=1048000-", 1048000, size - 1),
            ("bytes=5-9999999999999999999999", 5, size - 1),
        ):
            response = http.get(stored["url"], headers={"Range": header})
            assert response.status_code == 206, header
            assert response.headers["content-range"] == f"bytes {start}-{end}/{size}"
            assert response.headers["content-length"] == str(end - start + 1)
            assert response.headers["content-type"] == "video/mp4"
            assert response.headers["etag"] == f'"{stored["sha256"]}"'
            assert response.headers["accept-ranges"] == "bytes"
            assert response.content == DATA[start : end + 1]


def test_multiple_ranges_on_the_wire(server: ServerProcess, stored: dict[str, str]) -> None:
    size = len(DATA)
    with httpx.Client(base_url=server.url) as http:
        response = http.get(
            stored["url"], headers={"Range": "bytes=500-599, 0-9, 5-19, -4, 100000-100000"}
        )
    assert response.status_code == 206
    match = re.fullmatch(
        r"multipart/byteranges; boundary=([0-9a-f]{32})", response.headers["content-type"]
    )
    assert match is not None
    assert "content-range" not in response.headers
    assert response.headers["content-length"] == str(len(response.content))
    boundary = match.group(1).encode()
    expected = [(0, 19), (500, 599), (100000, 100000), (size - 4, size - 1)]
    body = b"--" + boundary + b"\r\n"
    for index, (start, end) in enumerate(expected):
        if index:
            body += b"\r\n--" + boundary + b"\r\n"
        body += (
            f"content-type: video/mp4\r\ncontent-range: bytes {start}-{end}/{size}\r\n\r\n"
        ).encode()
        body += DATA[start : end + 1]
    body += b"\r\n--" + boundary + b"--\r\n"
    assert response.content == body  # byte for byte


def test_conditional_requests(server: ServerProcess, stored: dict[str, str]) -> None:
    url = stored["url"]
    size = len(DATA)
    with httpx.Client(base_url=server.url) as http:
        first = http.get(url)
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        for headers in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
            response = http.get(url, headers=headers)
            assert response.status_code == 304, headers
            assert response.content == b""
            assert response.headers["etag"] == etag
            assert "content-length" not in response.headers
        for validator in (etag, modified):
            partial = http.get(url, headers={"Range": "bytes=0-3", "If-Range": validator})
            assert partial.status_code == 206
            assert partial.headers["content-range"] == f"bytes 0-3/{size}"
        stale = http.get(url, headers={"Range": "bytes=0-3", "If-Range": '"old"'})
        assert stale.status_code == 200
        assert stale.headers["content-length"] == str(size)
        failed = http.get(url, headers={"If-Match": '"old"'})
        assert failed.status_code == 412
        assert failed.json()["error"]["type"] == "precondition_failed"
        unsatisfiable = http.get(url, headers={"Range": f"bytes={size}-"})
        assert unsatisfiable.status_code == 416
        assert unsatisfiable.headers["content-range"] == f"bytes */{size}"
        assert unsatisfiable.json()["error"]["type"] == "range_not_satisfiable"
        many = http.get(
            url, headers={"Range": "bytes=" + ",".join(f"{3 * i}-{3 * i}" for i in range(101))}
        )
        assert many.status_code == 200  # more than 100 ranges: the Range header is ignored
        assert many.content == DATA


def test_traversal_never_reaches_outside(server: ServerProcess, storage: Path) -> None:
    (storage.parent / "secret.txt").write_text("the-secret-content")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        for target in (
            "/v1/files/../secret.txt",
            "/v1/files/..%2Fsecret.txt",
            "/v1/files/%2e%2e%2fsecret.txt",
            "/v1/files/..%5Csecret.txt",
        ):
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            head, body = read_response(sock)
            assert head.startswith(b"HTTP/1.1 404 "), (target, head)
            assert b"the-secret-content" not in body


# -- uploads refused early -----------------------------------------------------------------------
def test_413_arrives_while_the_client_is_still_sending(
    server: ServerProcess, storage: Path
) -> None:
    """A chunked body (no Content-Length) over the 2 MiB limit: the answer comes once the
    limit is passed, not after the 64 MiB the client meant to send."""
    block = b"\0" * (64 * 1024)
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"PUT /v1/files/big.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            while sent < 64 * MiB:
                sock.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
                sent += len(block)
                if select.select([sock], [], [], 0)[0]:
                    answer = sock.recv(65536)
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        head, body = read_response(sock, answer)
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"]["type"] == "payload_too_large"
    assert sent < 8 * MiB, sent  # refused near the limit, long before the end
    eventually_sync(lambda: nothing_kept(storage), message="files left behind")


def test_declared_length_over_the_limit_is_413_before_any_byte(
    server: ServerProcess, storage: Path
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"PUT /v1/files/big.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 3000000000\r\n\r\n"
        )
        head, body = read_response(sock)
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"]["type"] == "payload_too_large"
    assert nothing_kept(storage)


def test_trickling_body_is_cut_with_408(server: ServerProcess, storage: Path) -> None:
    """Slowloris on the body: 1 byte every 50 ms (20 B/s) against 1000 B/s over a 1 s
    window. uvicorn alone would wait forever."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"PUT /v1/files/slow.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"
        )
        for _ in range(400):  # at most 20 s
            try:
                sock.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([sock], [], [], 0.05)[0]:
                break
        head, body = read_response(sock)
    elapsed = time.monotonic() - started
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert json.loads(body)["error"]["type"] == "request_timeout"
    assert elapsed < 10
    eventually_sync(lambda: nothing_kept(storage), message="files left behind")


def test_wrong_checksum_is_400_and_nothing_kept(server: ServerProcess, storage: Path) -> None:
    with httpx.Client(base_url=server.url) as http:
        response = http.put(
            "/v1/files/x.bin",
            content=os.urandom(300_000),
            headers={"X-Checksum-Sha256": hashlib.sha256(b"else").hexdigest()},
        )
    assert response.status_code == 400
    assert "mismatch" in response.json()["error"]["message"]
    assert nothing_kept(storage)


def test_multipart_cut_mid_file_leaves_nothing(server: ServerProcess, storage: Path) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /v1/files HTTP/1.1\r\nHost: t\r\nContent-Length: 1900000\r\n"
            b"Content-Type: multipart/form-data; boundary=xyz\r\n\r\n"
            b'--xyz\r\nContent-Disposition: form-data; name="a"; filename="a.bin"\r\n\r\n'
            + b"a" * 1000
            + b'\r\n--xyz\r\nContent-Disposition: form-data; name="b"; filename="b.bin"\r\n\r\n'
            + b"b" * 900_000
        )
        eventually_sync(
            lambda: len(list((storage / ".tmp").iterdir())) == 2,
            message="the two files never started",
        )
    eventually_sync(lambda: nothing_kept(storage), message="files left behind")


# -- a real client -------------------------------------------------------------------------------
def test_curl_upload_file(server: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "notes v1.txt"
    source.write_bytes(os.urandom(200_000))
    done = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "-T", str(source), f"{server.url}/v1/files/"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    body = json.loads(done.stdout)
    assert body["name"] == "notes v1.txt"
    assert body["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    with httpx.Client(base_url=server.url) as http:
        assert http.get(body["url"]).content == source.read_bytes()
