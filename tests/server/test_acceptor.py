"""server/_acceptor.py: connections accepted in batches (uvloop accepts one per loop
iteration), handed to the loop with the server's protocol; paused, not spinning, when out of
descriptors; closed without losing a handshake in flight."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
import uvloop

from mianzhang.server import _acceptor
from mianzhang.server._acceptor import ACCEPT_BATCH, Acceptor
from tests._support.wait import eventually

PENDING = 300


def listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    return sock


def connect_all(sock: socket.socket, count: int) -> list[socket.socket]:
    """``count`` connections to ``sock`` waiting in its backlog (non-blocking connects)."""
    clients = []
    for _ in range(count):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect(sock.getsockname())
        clients.append(client)
    return clients


def queued(sock: socket.socket) -> int:
    """Connections in the listener's accept queue (Linux: TCP_INFO's tcpi_unacked)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return int.from_bytes(info[24:28], "little")


class Accepting:
    """An acceptor of a fresh listener whose protocol records the loop iteration (counted by
    the test in ``iteration``) each connection was made in."""

    def __init__(self) -> None:
        self.sock = listener()
        self.made: list[int] = []
        self.iteration = 0
        self.clients: list[socket.socket] = []
        owner = self

        class Counting(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                owner.made.append(owner.iteration)

        self.acceptor = Acceptor(self.sock, Counting)

    def connect(self, count: int) -> None:
        self.clients += connect_all(self.sock, count)


@contextlib.asynccontextmanager
async def accepting() -> AsyncIterator[Accepting]:
    """:class:`Accepting`; on exit the acceptor is closed and awaited, every socket closed."""
    made = Accepting()
    try:
        yield made
    finally:
        made.acceptor.close()
        await made.acceptor.wait_closed()
        for client in made.clients:
            client.close()
        made.sock.close()


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
        async with accepting() as server:
            server.connect(PENDING)
            await eventually(lambda: queued(server.sock) == PENDING, timeout=5)
            server.acceptor.start()
            async with asyncio.timeout(10):
                while len(server.made) < PENDING:
                    server.iteration += 1
                    await asyncio.sleep(0)
            bound = math.ceil(PENDING / ACCEPT_BATCH) + 2
            assert max(server.made) - min(server.made) <= bound, server.made

    run(main, loop)


async def test_out_of_descriptors_pauses_accepting_then_resumes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_acceptor, "RETRY_DELAY", 0.05)
    async with accepting() as server:
        failures = [OSError(errno.EMFILE, "Too many open files")]
        real_accept = socket.socket.accept

        def accept(self: socket.socket) -> tuple[socket.socket, Any]:
            if self is server.sock and failures:
                raise failures.pop()
            return real_accept(self)

        monkeypatch.setattr(socket.socket, "accept", accept)
        server.connect(3)
        server.acceptor.start()
        await eventually(lambda: len(server.made) == 3, timeout=5)
        assert caplog.text.count("accepting connections paused") == 1


async def test_close_stops_accepting_and_waits_for_handshakes() -> None:
    async with accepting() as server:
        server.connect(5)
        server.acceptor.start()
        await eventually(lambda: len(server.made) == 5, timeout=5)
        server.acceptor.close()
        await server.acceptor.wait_closed()
        server.connect(5)
        await eventually(lambda: queued(server.sock) == 5, timeout=5)
        assert len(server.made) == 5  # queued in the kernel, never accepted
