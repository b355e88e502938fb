"""server/_acceptor.py: connections accepted in batches (uvloop accepts one per loop
iteration), handed to the loop with the server's protocol; paused, not spinning, when out of
descriptors; closed without losing a handshake in flight."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from mianzhang.server import _acceptor
from mianzhang.server._acceptor import ACCEPT_BATCH, Acceptor
from tests._support.wait import eventually

PENDING = 300


class Counting(asyncio.Protocol):
    """Records the loop iteration each connection was made in."""

    made: list[int]
    iteration: list[int]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.append(self.iteration[0])
        self.transport = transport


def listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    return sock


def connect_all(port: int, count: int) -> list[socket.socket]:
    """``count`` connections waiting in the listener's backlog (non-blocking connects)."""
    clients = []
    for _ in range(count):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect(("127.0.0.1", port))
        clients.append(client)
    return clients


def run(main: Callable[[], Coroutine[Any, Any, None]], loop: str) -> None:
    if loop == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_backlog_is_accepted_a_batch_per_iteration(loop: str) -> None:
    """300 pending connections: made within ceil(300 / ACCEPT_BATCH) iterations and a few
    more for the handshakes, on either loop (uvloop's own server needs 300)."""

    async def main() -> None:
        made: list[int] = []
        iteration = [0]
        protocol = type("P", (Counting,), {"made": made, "iteration": iteration})
        sock = listener()
        clients = connect_all(sock.getsockname()[1], PENDING)
        acceptor = Acceptor(sock, protocol)
        try:
            await eventually(lambda: _queued(sock) == PENDING, timeout=5)
            acceptor.start()
            async with asyncio.timeout(10):
                while len(made) < PENDING:
                    iteration[0] += 1
                    await asyncio.sleep(0)
            used = len(set(made))
            assert used <= math.ceil(PENDING / ACCEPT_BATCH) + 2, used
            assert max(made) - min(made) <= math.ceil(PENDING / ACCEPT_BATCH) + 2
        finally:
            acceptor.close()
            await acceptor.wait_closed()
            for client in clients:
                client.close()
            sock.close()

    run(main, loop)


def _queued(sock: socket.socket) -> int:
    """Connections in the listener's accept queue (Linux: TCP_INFO's tcpi_unacked)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return int.from_bytes(info[24:28], "little")


async def test_out_of_descriptors_pauses_accepting_then_resumes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_acceptor, "RETRY_DELAY", 0.05)
    made: list[int] = []
    protocol = type("P", (Counting,), {"made": made, "iteration": [0]})
    sock = listener()
    failures = [OSError(errno.EMFILE, "Too many open files")]
    real_accept = socket.socket.accept

    def accept(self: socket.socket) -> tuple[socket.socket, Any]:
        if self is sock and failures:
            raise failures.pop()
        return real_accept(self)

    monkeypatch.setattr(socket.socket, "accept", accept)
    clients = connect_all(sock.getsockname()[1], 3)
    acceptor = Acceptor(sock, protocol)
    try:
        acceptor.start()
        await eventually(lambda: len(made) == 3, timeout=5)
        assert "accepting connections paused" in caplog.text
        assert caplog.text.count("accepting connections paused") == 1
    finally:
        acceptor.close()
        await acceptor.wait_closed()
        for client in clients:
            client.close()
        sock.close()


async def test_close_stops_accepting_and_waits_for_handshakes() -> None:
    made: list[int] = []
    protocol = type("P", (Counting,), {"made": made, "iteration": [0]})
    sock = listener()
    acceptor = Acceptor(sock, protocol)
    first = connect_all(sock.getsockname()[1], 5)
    try:
        acceptor.start()
        await eventually(lambda: len(made) == 5, timeout=5)
        acceptor.close()
        await acceptor.wait_closed()
        later = connect_all(sock.getsockname()[1], 5)
        try:
            await eventually(lambda: _queued(sock) == 5, timeout=5)
            assert len(made) == 5  # queued in the kernel, never accepted
        finally:
            for client in later:
                client.close()
    finally:
        for client in first:
            client.close()
        sock.close()
