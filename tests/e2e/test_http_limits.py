"""The request limits of ``mianzhang serve`` hold however a request is cut into writes.

Raw sockets against real ``mianzhang serve`` processes: the head size, the header count, the
request target, the header deadline and the body silence deadline, each with the request sent
in one write, in many small writes and byte by byte; every refusal is JSON and closes the
connection. Then slowloris (slowhttptest) and the connection cap.
"""

from __future__ import annotations

import select
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests._support.procs import ServerProcess, serve_process

pytestmark = pytest.mark.e2e

BASE_ENV = {"MIANZHANG_FILES__ENABLED": "false", "MIANZHANG_WEB": "false"}
LIMITS = {
    "MIANZHANG_MAX_HEADER_BYTES": "16384",
    "MIANZHANG_MAX_HEADER_COUNT": "100",
    "MIANZHANG_MAX_REQUEST_LINE": "8192",
    "MIANZHANG_HEADER_TIMEOUT": "10",
    "MIANZHANG_BODY_TIMEOUT": "1",
}
CHUNKINGS = {"one write": 0, "small writes": 7, "byte by byte": 1}
HEAD = b"GET /healthz HTTP/1.1\r\nHost: test\r\n"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with serve_process(env=BASE_ENV | LIMITS) as srv:
        yield srv


@pytest.fixture(scope="module")
def impatient() -> Iterator[ServerProcess]:
    """A server whose request heads must be complete within 1 s."""
    with serve_process(env=BASE_ENV | {"MIANZHANG_HEADER_TIMEOUT": "1"}) as srv:
        yield srv


@pytest.fixture(params=list(CHUNKINGS), ids=list(CHUNKINGS))
def chunk(request: pytest.FixtureRequest) -> int:
    """Bytes per write (0: the whole request in one write)."""
    return int(CHUNKINGS[request.param])


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        assert self.headers["content-type"] == "application/json", self.headers
        error: dict[str, Any] = orjson.loads(self.body)["error"]
        return error


def connect(srv: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send(sock: socket.socket, data: bytes, chunk: int) -> int:
    """Write ``data`` in writes of ``chunk`` bytes (0: one write), stopping early once the
    server has answered (as a client reading while it writes would). Returns bytes sent."""
    if chunk == 0:
        sock.sendall(data)
        return len(data)
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent : sent + chunk])
            if select.select([sock], [], [], 0)[0]:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def read_answer(sock: socket.socket) -> Answer:
    """Read until the server closes the connection (bounded by the socket timeout)."""
    raw = b""
    while chunk := sock.recv(65536):
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return Answer(int(lines[0].split()[1]), headers, body)


def ask(srv: ServerProcess, request: bytes, chunk: int) -> Answer:
    with connect(srv) as sock:
        send(sock, request, chunk)
        return read_answer(sock)


def big_header(size: int) -> bytes:
    return HEAD + b"X-Big: " + b"a" * size + b"\r\n\r\n"


def many_headers(count: int) -> bytes:
    return HEAD + b"".join(b"h%d: 1\r\n" % i for i in range(count)) + b"\r\n"


def long_target(size: int) -> bytes:
    return b"GET /healthz?q=" + b"a" * (size - 11) + b" HTTP/1.1\r\nHost: test\r\n\r\n"


@pytest.mark.parametrize("size", [20_000, 65_000, 120_000])
def test_a_head_over_the_byte_limit_is_431(server: ServerProcess, chunk: int, size: int) -> None:
    answer = ask(server, big_header(size), chunk)
    assert answer.status == 431
    assert answer.headers["connection"] == "close"
    error = answer.error()
    assert error["type"] == "HeaderFieldsTooLarge"
    assert "16384 bytes" in error["message"]


def test_too_many_header_fields_are_431(server: ServerProcess, chunk: int) -> None:
    request = many_headers(2000)
    answer = ask(server, request, chunk)
    assert answer.status == 431
    assert answer.error()["message"] == "more than 100 header fields"
    assert ask(server, many_headers(150), chunk).status == 431


def test_a_request_target_over_the_limit_is_414(server: ServerProcess, chunk: int) -> None:
    answer = ask(server, long_target(10_000), chunk)
    assert answer.status == 414
    assert answer.error()["type"] == "URITooLong"


@pytest.mark.parametrize(
    "request_bytes",
    [big_header(15_000), many_headers(98), long_target(8_000)],
    ids=["15 KB head", "100 header fields", "8000-byte target"],
)
def test_requests_within_the_limits_are_served(
    server: ServerProcess, chunk: int, request_bytes: bytes
) -> None:
    closing = request_bytes[:-2] + b"Connection: close\r\n\r\n"
    answer = ask(server, closing, chunk)
    assert answer.status == 200, answer
    assert orjson.loads(answer.body) == {"status": "ok"}


def test_a_connection_serves_several_requests_then_refuses_the_oversized_one(
    server: ServerProcess, chunk: int
) -> None:
    """The limits are per request: a keep-alive connection is measured afresh each time."""
    small = HEAD + b"X-Pad: " + b"p" * 10_000 + b"\r\n\r\n"
    with connect(server) as sock:
        for _ in range(3):
            send(sock, small, chunk)
            got = b""
            while b'{"status":"ok"}' not in got:
                got += sock.recv(65536)
            assert got.startswith(b"HTTP/1.1 200 ")
        send(sock, big_header(20_000), chunk)
        assert read_answer(sock).status == 431


def test_an_unfinished_head_is_cut_with_408(impatient: ServerProcess, chunk: int) -> None:
    with connect(impatient) as sock:
        send(sock, HEAD + b"X-Never: finished", chunk)
        answer = read_answer(sock)
    assert answer.status == 408
    assert answer.error()["type"] == "RequestTimeout"


def test_a_head_trickling_in_is_cut_by_the_deadline_not_by_silence(
    impatient: ServerProcess,
) -> None:
    """One byte every 0.3 s: never silent, yet cut 1 s after the first byte. The sleep is the
    stimulus (a slowloris client's pace), not a synchronisation. (The pace is not a divisor of
    the deadline: a byte sent just as the server closes after its 408, which a slowloris is
    not worth a linger for, would be answered with a reset that discards the 408.)"""
    request = HEAD + b"X-Slow: " + b"s" * 100 + b"\r\n\r\n"
    sent = 0
    with connect(impatient) as sock:
        while not select.select([sock], [], [], 0)[0] and sent < len(request):
            sock.send(request[sent : sent + 1])
            sent += 1
            time.sleep(0.3)
        answer = read_answer(sock)
    assert answer.status == 408
    assert sent < len(request)  # cut long before the head was complete


def test_a_silent_body_is_cut_with_408(server: ServerProcess, chunk: int) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    with connect(server) as sock:
        send(sock, head + b'{"model": "demo", ', chunk)  # then nothing more
        answer = read_answer(sock)
    assert answer.status == 408
    assert answer.headers["connection"] == "close"
    assert answer.error()["code"] == "request_timeout"  # OpenAI's shape on this route


def test_bytes_that_are_not_http_are_400_json(server: ServerProcess, chunk: int) -> None:
    answer = ask(server, b"HELLO THERE\r\n\r\n", chunk)
    assert answer.status == 400
    assert answer.error()["type"] == "InvalidRequest"


def test_slowloris_connections_are_cut_by_the_header_deadline(tmp_path: Path) -> None:
    """100 slowloris connections (headers never finished): with a 2 s header deadline the
    server closes them all while the service stays available; slowhttptest ends early with
    no connection left instead of holding them for its 8 s."""
    tool = shutil.which("slowhttptest")
    assert tool, "slowhttptest is installed by ./scripts/test"
    env = BASE_ENV | {"MIANZHANG_HEADER_TIMEOUT": "2"}
    with serve_process(env=env) as srv:
        out = tmp_path / "slow"
        result = subprocess.run(
            [
                tool,
                "-c",
                "100",
                "-H",
                "-i",
                "1",
                "-r",
                "100",
                "-t",
                "GET",
                "-u",
                f"{srv.url}/healthz",
                "-x",
                "24",
                "-p",
                "2",
                "-l",
                "8",
                "-g",
                "-o",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "No open connections left" in result.stdout + result.stderr
        rows = [line.split(",") for line in out.with_suffix(".csv").read_text().splitlines()[1:]]
        seconds = [int(row[0]) for row in rows]
        closed = [int(row[1]) for row in rows]
        available = [int(row[4]) for row in rows]
        # every connection was cut by the server (none left open) long before the test's end
        assert max(seconds) < 8, rows
        assert closed[-1] >= 50, rows
        assert min(available) > 0, rows  # the probe was served throughout
        assert httpx.get(f"{srv.url}/healthz").status_code == 200


def test_header_deadline_and_size_limit_answer_408_and_431() -> None:
    env = BASE_ENV | {"MIANZHANG_HEADER_TIMEOUT": "1", "MIANZHANG_MAX_HEADER_BYTES": "4096"}
    with serve_process(env=env) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            assert sock.recv(100).startswith(b"HTTP/1.1 408 ")
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000)
            assert sock.recv(100).startswith(b"HTTP/1.1 431 ")


def test_the_connection_cap_answers_503_json() -> None:
    env = BASE_ENV | {"MIANZHANG_MAX_CONNECTIONS": "2"}  # two served, the third refused
    with serve_process(env=env) as srv:
        url = f"{srv.url}/v1/demo/ticks?interval=1&count=5"
        with (
            httpx.Client(timeout=10) as one,
            httpx.Client(timeout=10) as two,
            one.stream("GET", url) as first,
            two.stream("GET", url) as second,
        ):
            assert first.status_code == second.status_code == 200
            refused = httpx.get(f"{srv.url}/healthz")
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["type"] == "Overloaded"
