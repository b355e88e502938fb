"""2 GiB through a real uvicorn process: download (sparse file) and upload (streamed body),
with the server's peak RSS growth measured from /proc (VmHWM after a reset), bounded < 50 MB.
Also: an upload whose client vanishes mid-body leaves nothing behind."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mianzhang.files import new_file_id
from tests._support.procs import ServerProcess, reset_peak, status_kib, uvicorn_process
from tests._support.wait import eventually_sync

pytestmark = pytest.mark.e2e

GiB = 1 << 30
MiB = 1 << 20
LIMIT_KIB = 50 * 1000  # 50 MB


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "files"
    directory.mkdir()
    try:
        yield directory
    finally:  # 2 GiB files: remove them even if the test failed
        for path in directory.rglob("*"):
            if path.is_file():
                path.unlink()


@pytest.fixture
def server(storage: Path) -> Iterator[ServerProcess]:
    with uvicorn_process(
        "tests.e2e.apps.files_app:create_app", factory=True, env={"MZ_FILES_DIR": str(storage)}
    ) as proc:
        yield proc


def test_download_2gib_with_bounded_memory(server: ServerProcess, storage: Path) -> None:
    file_id = new_file_id()
    with open(storage / file_id, "wb") as handle:
        handle.truncate(2 * GiB)  # sparse: no disk used, reads return zeros
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get(f"/v1/files/{file_id}", headers={"Range": "bytes=0-9"}).status_code == 206
        baseline = reset_peak(server.proc.pid)
        received = 0
        with client.stream("GET", f"/v1/files/{file_id}") as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == str(2 * GiB)
            for chunk in response.iter_raw(MiB):
                received += len(chunk)
    growth = status_kib(server.proc.pid, "VmHWM") - baseline
    assert received == 2 * GiB
    assert growth < LIMIT_KIB, f"server RSS grew by {growth} KiB"


def test_ranged_download_far_into_a_2gib_file(server: ServerProcess, storage: Path) -> None:
    file_id = new_file_id()
    with open(storage / file_id, "wb") as handle:
        handle.truncate(2 * GiB)
        handle.seek(2 * GiB - 5)
        handle.write(b"tail!")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.get(
            f"/v1/files/{file_id}", headers={"Range": f"bytes=0-0,{2 * GiB - 5}-"}
        )
    assert response.status_code == 206
    assert response.content.count(b"tail!") == 1
    assert f"bytes {2 * GiB - 5}-{2 * GiB - 1}/{2 * GiB}".encode() in response.content


def test_upload_2gib_with_bounded_memory(server: ServerProcess, storage: Path) -> None:
    block = hashlib.sha256(b"seed").digest() * (MiB // 32)  # 1 MiB, not all zeros
    blocks = 2048
    expected = hashlib.sha256()
    for _ in range(blocks):
        expected.update(block)

    def body() -> Iterator[bytes]:
        for _ in range(blocks):
            yield block

    baseline = reset_peak(server.proc.pid)
    with httpx.Client(base_url=server.url, timeout=120) as client:
        response = client.post(
            "/v1/files",
            params={"name": "big.bin"},
            content=body(),
            headers={"Content-Length": str(blocks * MiB)},
        )
    growth = status_kib(server.proc.pid, "VmHWM") - baseline
    assert response.status_code == 201, response.text
    meta = response.json()
    assert meta["size"] == 2 * GiB
    assert meta["sha256"] == expected.hexdigest()
    assert (storage / meta["id"]).stat().st_size == 2 * GiB
    assert list((storage / ".tmp").iterdir()) == []
    assert growth < LIMIT_KIB, f"server RSS grew by {growth} KiB"


def test_client_vanishing_mid_upload_leaves_nothing(server: ServerProcess, storage: Path) -> None:
    tmp = storage / ".tmp"
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /v1/files?name=x.bin HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: 104857600\r\n\r\n"
        )
        for _ in range(20):
            sock.sendall(b"\0" * MiB)
        eventually_sync(lambda: any(tmp.iterdir()), message="the upload never started")
    # the socket is closed: the server must notice and clean up
    eventually_sync(lambda: not any(tmp.iterdir()), message="a temporary file was left")
    assert [p for p in storage.iterdir() if not p.name.startswith(".")] == []
