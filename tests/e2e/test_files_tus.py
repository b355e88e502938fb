"""A real tus client (tuspy) against a real uvicorn: interrupted uploads resume.

1. The client stops after N chunks (its process could have died) and a fresh uploader with the
   stored URL asks the server for the offset and finishes.
2. The server is SIGKILLed in the middle of a PATCH and restarted on the same storage: the
   bytes it had written survive, tuspy resumes from the offset HEAD reports.
3. An upload terminated under the client's feet: tuspy's next PATCH gets 404 with a JSON error
   body, as every error of the server.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
from pathlib import Path

import httpx
import pytest
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from tests._support.procs import free_port, uvicorn_process
from tests._support.wait import eventually_sync

pytestmark = pytest.mark.e2e

MiB = 1 << 20
APP = "tests.e2e.apps.files_app:create_app"


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    directory = tmp_path / "files"
    directory.mkdir()
    return directory


def test_tuspy_resumes_after_stopping(storage: Path) -> None:
    data = os.urandom(10 * MiB + 12345)
    with uvicorn_process(APP, factory=True, env={"MZ_FILES_DIR": str(storage)}) as server:
        client = TusClient(f"{server.url}/v1/uploads")
        first = client.uploader(
            file_stream=io.BytesIO(data), chunk_size=MiB, metadata={"filename": "video.bin"}
        )
        for _ in range(3):
            first.upload_chunk()
        assert first.offset == 3 * MiB
        url = first.url
        assert url is not None
        del first  # the client "dies"; only the URL survives (tuspy's url_storage keeps it)

        resumed = TusClient(f"{server.url}/v1/uploads").uploader(
            file_stream=io.BytesIO(data), chunk_size=4 * MiB, url=url
        )
        assert resumed.offset == 3 * MiB  # asked the server with HEAD
        resumed.upload()
        upload_id = url.rsplit("/", 1)[1]
        with httpx.Client(base_url=server.url) as http:
            download = http.get(f"/v1/files/{upload_id}")
        assert download.status_code == 200
        assert hashlib.sha256(download.content).hexdigest() == hashlib.sha256(data).hexdigest()
        assert "video.bin" in download.headers["content-disposition"]


def size_of(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def test_tuspy_resumes_after_server_is_killed_mid_patch(storage: Path) -> None:
    data = os.urandom(40 * MiB)
    port = free_port()
    env = {"MZ_FILES_DIR": str(storage)}
    with uvicorn_process(
        APP, factory=True, env=env, port=port, stop_signal=signal.SIGKILL
    ) as server:
        with httpx.Client(base_url=server.url) as http:
            created = http.post(
                "/v1/uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data))}
            )
        url = server.url + created.headers["location"]
        part = storage / ".tus" / (url.rsplit("/", 1)[1] + ".part")
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                f"PATCH {created.headers['location']} HTTP/1.1\r\nHost: t\r\n"
                "Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                "Content-Type: application/offset+octet-stream\r\n"
                f"Content-Length: {len(data)}\r\n\r\n".encode()
            )
            sock.sendall(data[: 15 * MiB])
            # the server has written at least 8 MiB
            eventually_sync(lambda: size_of(part) >= 8 * MiB, timeout=20, interval=0.02)
            server.proc.kill()  # SIGKILL in the middle of the PATCH
            server.proc.wait(10)
    kept = part.stat().st_size
    assert 8 * MiB <= kept <= 15 * MiB

    with uvicorn_process(APP, factory=True, env=env, port=port) as server:
        uploader = TusClient(f"{server.url}/v1/uploads").uploader(
            file_stream=io.BytesIO(data), chunk_size=8 * MiB, url=url
        )
        assert uploader.offset == kept  # resumes where the killed server stopped
        uploader.upload()
        with httpx.Client(base_url=server.url) as http:
            download = http.get("/v1/files/" + url.rsplit("/", 1)[1])
        assert hashlib.sha256(download.content).digest() == hashlib.sha256(data).digest()
        assert not part.exists()


def test_tuspy_sees_a_json_404_for_a_terminated_upload(storage: Path) -> None:
    data = os.urandom(3 * MiB)
    with uvicorn_process(APP, factory=True, env={"MZ_FILES_DIR": str(storage)}) as server:
        uploader = TusClient(f"{server.url}/v1/uploads").uploader(
            file_stream=io.BytesIO(data), chunk_size=MiB
        )
        uploader.upload_chunk()
        assert uploader.offset == MiB and uploader.url is not None
        with httpx.Client(base_url=server.url) as http:
            terminated = http.delete(uploader.url, headers={"Tus-Resumable": "1.0.0"})
            assert terminated.status_code == 204
            head = http.head(uploader.url, headers={"Tus-Resumable": "1.0.0"})
        with pytest.raises(TusUploadFailed) as failed:
            uploader.upload_chunk()  # PATCH of an upload that is gone
        assert failed.value.status_code == 404
        error = json.loads(failed.value.response_content)["error"]
        assert error["type"] == "not_found" and "upload not found" in error["message"]
        # a fresh uploader asks HEAD first: 404 too (the same headers, no body on HEAD)
        with pytest.raises(TusCommunicationError) as lost:
            TusClient(f"{server.url}/v1/uploads").uploader(
                file_stream=io.BytesIO(data), chunk_size=MiB, url=uploader.url
            )
        assert lost.value.status_code == 404
    assert head.status_code == 404 and head.content == b""
    assert head.headers["content-type"] == "application/json"
    assert head.headers["tus-resumable"] == "1.0.0"
