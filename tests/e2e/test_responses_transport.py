"""Plain uvicorn with ``--http mianzhang.server:HttpProtocol`` resets a stalled reader's
connection when its stream is cut; without it (uvicorn's own protocol: the fallback) the
stream still ends and is counted, but uvicorn's ``close()`` keeps the socket until its
write buffer drains, i.e. until the reader reads (the limit ``_responses._transport``
documents)."""

from __future__ import annotations

import socket
import uuid

import httpx
import psutil
import pytest

from tests._support.procs import ServerProcess, uvicorn_process
from tests._support.wait import eventually_sync

pytestmark = pytest.mark.e2e

APP = "tests.e2e.apps.responses_app:app"


def stalled(port: int, path: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def send_timeouts(server: ServerProcess) -> int:
    count: int = httpx.get(f"{server.url}/_stats", timeout=5).json()["send_timeouts"]
    return count


def held(server: ServerProcess, sock: socket.socket) -> bool:
    """The server holds a connection from this client socket."""
    client_port = sock.getsockname()[1]
    return any(
        c.raddr and c.raddr.port == client_port
        for c in psutil.Process(server.proc.pid).net_connections("tcp")
    )


def read_to_the_end(sock: socket.socket) -> str:
    """Read everything; how the connection ended: ``reset`` or ``eof``."""
    try:
        while sock.recv(1 << 20):
            pass
    except ConnectionResetError:
        return "reset"
    return "eof"


def test_http_protocol_resets_a_cut_reader_at_once() -> None:
    args = ("--http", "mianzhang.server:HttpProtocol")
    with uvicorn_process(APP, args=args) as server:
        before = send_timeouts(server)
        sock = stalled(server.port, f"/big?key={uuid.uuid4().hex}&size=65536&send_timeout=1")
        with sock:
            eventually_sync(lambda: send_timeouts(server) > before, timeout=10)
            eventually_sync(lambda: not held(server, sock), timeout=2)
            assert read_to_the_end(sock) == "reset"


def test_without_it_the_stream_ends_but_uvicorn_keeps_the_socket_until_it_is_read() -> None:
    with uvicorn_process(APP, args=("--http", "httptools")) as server:
        before = send_timeouts(server)
        sock = stalled(server.port, f"/big?key={uuid.uuid4().hex}&size=65536&send_timeout=1")
        with sock:
            eventually_sync(lambda: send_timeouts(server) > before, timeout=10)
            assert held(server, sock)  # the fallback's limit: closed only behind its data
            assert read_to_the_end(sock) == "eof"
            eventually_sync(lambda: not held(server, sock), timeout=5)
