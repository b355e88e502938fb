"""``SocketTransport`` over real loopback connections, on asyncio's and uvloop's transports:
the kernel's count of unacknowledged and acknowledged bytes, the send buffer, the reset."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any, cast

import pytest
import uvloop

from mianzhang._responses._transport import SocketTransport
from tests._support.wait import eventually

MiB = 1 << 20
Check = Callable[[asyncio.Transport, socket.socket], Coroutine[Any, Any, None]]


async def _connected(check: Check) -> None:
    """Run ``check`` with the server side of a loopback connection (its transport) and the
    client's socket (4 KiB receive buffer, non-blocking, never read unless ``check`` does)."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[asyncio.Transport] = loop.create_future()

    class Accepting(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # (uvloop's transports do not derive from asyncio's classes)
            accepted.set_result(cast(asyncio.Transport, transport))

    server = await loop.create_server(Accepting, "127.0.0.1", 0)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.setblocking(False)
        await loop.sock_connect(client, server.sockets[0].getsockname())
        async with asyncio.timeout(10):
            transport = await accepted
            try:
                await check(transport, client)
            finally:
                transport.abort()
    finally:
        client.close()
        server.close()
        await server.wait_closed()


def run(check: Check, loop: str) -> None:
    if loop == "uvloop":
        uvloop.run(_connected(check))
    else:
        asyncio.run(_connected(check))


def drain(client: socket.socket) -> int:
    """Read whatever the client socket holds now."""
    total = 0
    try:
        while chunk := client.recv(MiB):
            total += len(chunk)
    except BlockingIOError:
        pass
    return total


LOOPS = ["asyncio", "uvloop"]


@pytest.mark.parametrize("loop", LOOPS)
def test_unacknowledged_bytes_wait_for_the_reader_and_acknowledgements_follow_it(
    loop: str,
) -> None:
    async def check(transport: asyncio.Transport, client: socket.socket) -> None:
        offered = SocketTransport(transport)
        start = offered.acknowledged_bytes()
        assert start is not None
        transport.write(b"x" * MiB)
        assert offered.unacknowledged_bytes() > MiB // 2  # the reader took at most its buffer
        acknowledged = offered.acknowledged_bytes()
        assert acknowledged is not None and acknowledged - start < MiB
        received = 0

        def all_read() -> bool:
            nonlocal received
            received += drain(client)
            return received == MiB and offered.unacknowledged_bytes() == 0

        await eventually(all_read, timeout=10)
        assert offered.acknowledged_bytes() == start + MiB

    run(check, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_the_send_buffer_is_set(loop: str) -> None:
    async def check(transport: asyncio.Transport, client: socket.socket) -> None:
        offered = SocketTransport(transport, stream_send_buffer=65536)
        offered.set_send_buffer(offered.stream_send_buffer)
        sock = transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * 65536  # Linux

    run(check, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_peer_that_does_not_read_blocks_writes_after_its_window_and_the_unsent_limit(
    loop: str,
) -> None:
    """With the unsent limit the kernel takes about the peer's receive window and the limit,
    then the server's write buffer passes its (same) high-water mark: the writer is paused
    after tens of KiB, not after the whole send buffer (128 KiB asked, 256 KiB in Linux)."""

    async def check(transport: asyncio.Transport, client: socket.socket) -> None:
        paused = asyncio.Event()
        transport.get_protocol().pause_writing = paused.set  # type: ignore[attr-defined]
        offered = SocketTransport(
            transport, stream_send_buffer=128 * 1024, stream_unsent_limit=1024
        )
        offered.set_send_buffer(offered.stream_send_buffer)
        offered.limit_unsent(offered.stream_unsent_limit)
        sock = transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT) == 1024
        assert transport.get_write_buffer_limits()[1] == 1024
        written = 0
        while not paused.is_set() and written < MiB:
            transport.write(b"x" * 1024)
            written += 1024
            await asyncio.sleep(0)  # the loop may flush its buffer to the kernel
        assert paused.is_set()
        assert written < 64 * 1024, written
        assert drain(client) + transport.get_write_buffer_size() <= written

    run(check, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_abort_resets_the_connection_even_with_bytes_unsent(loop: str) -> None:
    async def check(transport: asyncio.Transport, client: socket.socket) -> None:
        offered = SocketTransport(transport)
        transport.write(b"x" * MiB)
        offered.abort()
        reset = False

        def ended() -> bool:
            nonlocal reset
            try:
                drain(client)
            except ConnectionResetError:
                reset = True
            return reset

        await eventually(ended, timeout=5, message="no reset reached the reader")

    run(check, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_once_the_connection_is_lost_the_descriptor_is_never_touched(loop: str) -> None:
    async def check(transport: asyncio.Transport, client: socket.socket) -> None:
        offered = SocketTransport(transport)
        transport.write(b"x" * MiB)
        transport.abort()
        offered.connection_lost()
        assert offered.unacknowledged_bytes() == 0
        assert offered.acknowledged_bytes() is None
        offered.set_send_buffer(4096)  # nothing to set
        offered.abort()  # already closed: nothing happens

    run(check, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_loss_callback_is_called_once_when_the_connection_is_lost(loop: str) -> None:
    async def check(transport: asyncio.Transport, client: socket.socket) -> None:
        offered = SocketTransport(transport)
        lost: list[str] = []
        assert offered.on_lost(lambda: lost.append("first"))
        assert offered.on_lost(lambda: lost.append("second"))  # replaces the first
        offered.connection_lost()
        offered.connection_lost()
        assert lost == ["second"]
        assert not offered.on_lost(lambda: lost.append("late"))  # already lost: not kept
        withdrawn = SocketTransport(transport)
        withdrawn._socket = object()  # (a live connection, for this check)
        assert withdrawn.on_lost(lambda: lost.append("withdrawn"))
        assert withdrawn.on_lost(None)
        withdrawn.connection_lost()
        assert lost == ["second"]

    run(check, loop)
