"""mianzhang's streaming responses behind a real uvicorn process, over real loopback sockets
(issue 2, "Responses"): client disconnect, a reader that stalls, graceful shutdown with 200
open streams, errors before and after the headers, and the same through FastAPI.

Server-side facts are read from the app (``/_cleanups``, ``/_stats``, a cleanup file) by polling
with ``eventually_sync``; every socket has a timeout and every scenario a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest

from mianzhang import ServerSentEvent, SSEDecoder
from tests._support.procs import ServerProcess, reset_peak, status_kib, uvicorn_process
from tests._support.wait import eventually_sync

pytestmark = pytest.mark.e2e

APP = "tests.e2e.apps.responses_app:app"
FASTAPI_APP = "tests.e2e.apps.responses_app:fastapi_app"
MiB = 1 << 20


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with uvicorn_process(APP) as proc:
        yield proc


@pytest.fixture(scope="module")
def fastapi_server() -> Iterator[ServerProcess]:
    with uvicorn_process(FASTAPI_APP) as proc:
        yield proc


@pytest.fixture
def key() -> str:
    return uuid.uuid4().hex


# -- helpers -----------------------------------------------------------------------------------
def request_bytes(path: str, method: str = "GET") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()


def open_stream(port: int, path: str, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect, so the advertised window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request_bytes(path))
    return sock


def read_until(sock: socket.socket, needle: bytes) -> bytes:
    data = b""
    while needle not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"EOF before {needle!r}: {data[:500]!r}")
        data += chunk
    return data


def split_response(raw: bytes) -> tuple[int, dict[str, list[str]], bytes, bool]:
    """(status, headers, de-chunked body, whether the terminating chunk arrived)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    body = b""
    complete = False
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            complete = rest.startswith(b"\r\n")
            break
        if len(rest) < size + 2:
            break
        body += rest[:size]
        rest = rest[size + 2 :]
    return status, headers, body, complete


def sse(body: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = decoder.decode(body)
    decoder.close()
    return events


def get_json(server: ServerProcess, path: str, **params: Any) -> Any:
    response = httpx.get(f"{server.url}{path}", params=params, timeout=5)
    response.raise_for_status()
    return response.json()


def cleanups(server: ServerProcess, key: str) -> dict[str, Any]:
    """How many generators of ``key`` ran their ``finally`` (``count``), when (``at``), and
    how many events they produced."""
    result: dict[str, Any] = get_json(server, "/_cleanups", key=key)
    return result


def stats(server: ServerProcess) -> dict[str, int]:
    result: dict[str, int] = get_json(server, "/_stats")
    return result


# -- (1) client disconnect ---------------------------------------------------------------------
def _disconnect_and_measure(server: ServerProcess, key: str, path: str, *, reset: bool) -> float:
    sock = open_stream(server.port, path)
    try:
        head = read_until(sock, b"data: hello")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert cleanups(server, key)["count"] == 0  # still streaming
        if reset:  # RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        closed_at = time.time()
        sock.close()
    eventually_sync(
        lambda: cleanups(server, key)["count"] >= 1,
        timeout=5,
        message="the generator's finally never ran",
    )
    info = cleanups(server, key)
    assert info["count"] == 1, f"the generator's finally never ran: {info}"
    return float(info["at"][0]) - closed_at


@pytest.mark.parametrize("mode", ["idle", "busy", "sync"])
def test_generator_finally_runs_within_a_second_of_the_socket_closing(
    server: ServerProcess, key: str, mode: str
) -> None:
    before = stats(server)["disconnected"]
    delay = _disconnect_and_measure(server, key, f"/stream?key={key}&mode={mode}", reset=False)
    assert delay < 1.0, f"cleanup {delay:.3f}s after the close"
    eventually_sync(lambda: stats(server)["disconnected"] >= before + 1)
    assert stats(server)["disconnected"] >= before + 1


def test_generator_finally_runs_after_a_connection_reset(server: ServerProcess, key: str) -> None:
    delay = _disconnect_and_measure(server, key, f"/stream?key={key}&mode=idle", reset=True)
    assert delay < 1.0, f"cleanup {delay:.3f}s after the reset"


def test_closing_an_httpx_stream_cleans_up(server: ServerProcess, key: str) -> None:
    with httpx.Client(timeout=5) as client:
        with client.stream("GET", f"{server.url}/stream", params={"key": key}) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line == "data: hello":
                    break
        closed_at = time.time()
    eventually_sync(lambda: cleanups(server, key)["count"] >= 1, timeout=5)
    info = cleanups(server, key)
    assert info["count"] == 1
    assert info["at"][0] - closed_at < 1.0


# -- (2) a reader that stalls ------------------------------------------------------------------
def test_stalled_reader_keeps_memory_bounded_and_is_cut_off_by_send_timeout(
    server: ServerProcess, key: str
) -> None:
    size = 256 * 1024
    pid = server.proc.pid
    process = psutil.Process(pid)
    before = stats(server)
    rss_before = process.memory_info().rss
    reset_peak(pid)
    sock = open_stream(server.port, f"/big?key={key}&size={size}&send_timeout=1", rcvbuf=4096)
    try:
        started = time.monotonic()
        samples = [rss_before]

        def closed_by_the_server() -> bool:
            # never read; sample the server's memory while its generator would race ahead
            samples.append(process.memory_info().rss)
            return bool(cleanups(server, key)["count"])

        eventually_sync(
            closed_by_the_server,
            timeout=15,
            interval=0.05,
            message="send_timeout never closed the stalled stream",
        )
        elapsed = time.monotonic() - started
        info = cleanups(server, key)
        peak = max(max(samples), status_kib(pid, "VmHWM") * 1024)
        assert info["count"] == 1, f"send_timeout never closed the stalled stream: {info}"
        assert elapsed >= 1.0  # it was the 1 s send timeout, not something earlier
        eventually_sync(lambda: stats(server)["send_timeouts"] >= before["send_timeouts"] + 1)
        after = stats(server)
        assert after["send_timeouts"] == before["send_timeouts"] + 1
        assert after["disconnected"] == before["disconnected"]
        growth = peak - rss_before
        assert growth < 50 * MiB, f"server RSS grew {growth / MiB:.1f} MiB for a stalled reader"
        # The generator was held back too: only what fits in the socket buffers, uvicorn's
        # write buffer and our max_buffer was ever made (an unbounded one makes gigabytes).
        produced_bytes = info["produced"] * size
        assert produced_bytes < 32 * MiB, f"{info['produced']} events of {size} B produced"
        # The server closed the connection: once the reader wakes up it gets what was already
        # written, then EOF, without the terminating chunk (an aborted, not a finished, body).
        raw = b""
        while chunk := sock.recv(1 << 20):
            raw += chunk
        status, _, body, complete = split_response(raw)
        assert status == 200
        assert not complete
        assert len(raw) <= produced_bytes + 64 * 1024
        ids = [int(e.id or 0) for e in sse(body)]
        assert ids and ids == list(range(1, len(ids) + 1))  # in order, none skipped
    finally:
        sock.close()


# -- (3) graceful shutdown ---------------------------------------------------------------------
N_STREAMS = 200


async def _open_sse(
    port: int, path: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_bytes(path))
    await writer.drain()
    data = b""
    while b"data: hello" not in data:
        chunk = await reader.read(65536)
        assert chunk, f"EOF before the first event: {data!r}"
        data += chunk
    return reader, writer, data


async def _read_to_eof(reader: asyncio.StreamReader, data: bytes) -> bytes:
    while chunk := await reader.read(65536):
        data += chunk
    return data


async def test_sigterm_with_200_open_streams_ends_each_with_reconnect_and_exits_in_time(
    tmp_path: Path,
) -> None:
    graceful = 5
    cleanup_file = tmp_path / "cleanups.txt"
    env = {"RESPONSES_APP_CLEANUP_FILE": str(cleanup_file)}
    with uvicorn_process(APP, graceful_timeout=graceful, env=env) as server:
        writers: list[asyncio.StreamWriter] = []
        try:
            async with asyncio.timeout(60):
                opened = await asyncio.gather(
                    *(
                        _open_sse(server.port, f"/stream?key=shutdown-{i}&mode=idle")
                        for i in range(N_STREAMS)
                    )
                )
                writers = [w for _, w, _ in opened]
                assert (await asyncio.to_thread(stats, server))["active"] == N_STREAMS

                sent_at = time.monotonic()
                server.proc.send_signal(signal.SIGTERM)
                raws = await asyncio.gather(*(_read_to_eof(r, d) for r, _, d in opened))
                all_closed = time.monotonic() - sent_at
                await asyncio.to_thread(server.proc.wait, graceful + 5)
                exited = time.monotonic() - sent_at
        finally:
            for writer in writers:
                writer.close()
            for writer in writers:
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

        assert exited <= graceful + 1.0, f"exited {exited:.2f}s after SIGTERM"
        log = server.output()
        assert "timeout graceful shutdown exceeded" not in log, log[-2000:]
        for i, raw in enumerate(raws):
            status, _, body, complete = split_response(raw)
            assert status == 200
            assert complete, f"stream {i}: body not terminated: {raw[-200:]!r}"
            events = sse(body)
            assert [e.event for e in events] == ["message", "reconnect"], (i, body)
            assert events[-1].data == ""
            retry = events[-1].retry
            assert retry is not None and 500 <= retry <= 1500, (i, retry)
            assert b"event: reconnect\ndata: \nretry: " in body
        retries = {sse(split_response(raw)[2])[-1].retry for raw in raws}
        assert len(retries) > 10  # jittered over the clients
        cleaned = cleanup_file.read_text().split()
        assert sorted(cleaned) == sorted(f"shutdown-{i}" for i in range(N_STREAMS))
        assert all_closed <= exited


# -- (4) errors over real HTTP -----------------------------------------------------------------
def test_mianzhang_error_before_the_first_byte_is_a_json_http_error(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/fail-early", params={"kind": "mianzhang"}, timeout=5)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": {"type": "StreamError", "message": "the upstream is gone"}}


def test_foreign_error_before_the_first_byte_is_a_plain_500(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/fail-early", params={"kind": "foreign"}, timeout=5)
    assert response.status_code == 500
    assert "text/event-stream" not in response.headers["content-type"]
    assert "secret" not in response.text


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("mianzhang", {"type": "StreamError", "message": "the upstream is gone"}),
        ("foreign", {"type": "internal_error", "message": "the stream failed on the server"}),
    ],
)
def test_error_after_headers_is_an_error_event_and_a_complete_body(
    server: ServerProcess, kind: str, expected: dict[str, str]
) -> None:
    sock = open_stream(server.port, f"/fail-late?kind={kind}")
    try:
        raw = read_until(sock, b"0\r\n\r\n")
    finally:
        sock.close()
    status, headers, body, complete = split_response(raw)
    assert status == 200
    assert headers["content-type"] == ["text/event-stream; charset=utf-8"]
    assert complete  # the chunked body ended cleanly
    events = sse(body)
    assert [e.event for e in events] == ["message", "error"]
    assert orjson.loads(events[1].data) == expected
    assert b"Traceback" not in body and b"secret" not in body
    # and an HTTP client reads it to the end without a protocol error
    response = httpx.get(f"{server.url}/fail-late", params={"kind": kind}, timeout=5)
    assert response.status_code == 200
    assert sse(response.content)[-1].event == "error"


def test_text_stream_error_after_headers_truncates_the_body(server: ServerProcess) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{server.url}/text-fail-late", timeout=5)


def test_headers_on_the_wire(server: ServerProcess, key: str) -> None:
    sock = open_stream(server.port, f"/stream?key={key}")
    try:
        raw = read_until(sock, b"data: hello")
    finally:
        sock.close()
    status, headers, _, _ = split_response(raw)
    assert status == 200
    assert headers["content-type"] == ["text/event-stream; charset=utf-8"]
    assert headers["cache-control"] == ["no-cache"]
    assert headers["x-accel-buffering"] == ["no"]
    assert "connection" not in headers
    assert headers["transfer-encoding"] == ["chunked"]
    eventually_sync(lambda: cleanups(server, key)["count"] >= 1, timeout=5)


def test_head_request_completes_at_once(server: ServerProcess, key: str) -> None:
    response = httpx.head(f"{server.url}/stream", params={"key": key}, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert cleanups(server, key)["produced"] == 0  # never started


# -- (5) FastAPI -------------------------------------------------------------------------------
def test_fastapi_streams_with_the_same_headers_and_events(
    fastapi_server: ServerProcess, key: str
) -> None:
    sock = open_stream(fastapi_server.port, f"/stream?key={key}&mode=busy")
    try:
        raw = read_until(sock, b"data: tick 3\n\n")
        closed_at = time.time()
    finally:
        sock.close()
    status, headers, body, _ = split_response(raw)
    assert status == 200
    assert headers["content-type"] == ["text/event-stream; charset=utf-8"]
    assert headers["cache-control"] == ["no-cache"]
    assert headers["x-accel-buffering"] == ["no"]
    assert "connection" not in headers
    assert [e.data for e in sse(body)][:4] == ["hello", "tick 1", "tick 2", "tick 3"]
    eventually_sync(lambda: cleanups(fastapi_server, key)["count"] >= 1, timeout=5)
    info = cleanups(fastapi_server, key)
    assert info["count"] == 1
    assert info["at"][0] - closed_at < 1.0
    eventually_sync(lambda: stats(fastapi_server)["disconnected"] >= 1)
    assert stats(fastapi_server)["disconnected"] >= 1


def test_fastapi_errors_before_and_after_headers(fastapi_server: ServerProcess) -> None:
    early = httpx.get(f"{fastapi_server.url}/fail-early", params={"kind": "mianzhang"}, timeout=5)
    assert early.status_code == 503
    assert early.json()["error"]["type"] == "StreamError"
    late = httpx.get(f"{fastapi_server.url}/fail-late", params={"kind": "foreign"}, timeout=5)
    assert late.status_code == 200
    events = sse(late.content)
    assert [e.event for e in events] == ["message", "error"]
    assert orjson.loads(events[1].data)["type"] == "internal_error"
