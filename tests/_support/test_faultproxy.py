"""The fault proxy (tests/_support/faultproxy.py) against small asyncio TCP servers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from tests._support.faultproxy import FaultProxy

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Target:
    port: int
    accepted: int = 0
    errors: list[BaseException] = field(default_factory=list)


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


def _source(size: int) -> Handler:
    async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(bytes(i % 251 for i in range(size)))
        await writer.drain()

    return send


async def _serve(handler: Handler) -> AsyncIterator[Target]:
    target = Target(0)

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target.accepted += 1
        try:
            await handler(reader, writer)
        except OSError as exc:
            target.errors.append(exc)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError as exc:
                target.errors.append(exc)

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    target.port = server.sockets[0].getsockname()[1]
    try:
        yield target
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def echo() -> AsyncIterator[Target]:
    async for target in _serve(_echo):
        yield target


@pytest.fixture
async def source() -> AsyncIterator[Target]:
    async for target in _serve(_source(1000)):
        yield target


async def _open(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(proxy.host, proxy.port)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _expect_reset(proxy: FaultProxy) -> None:
    """The proxy resets the connection: during the handshake or on the first read (a race of
    the kernel, not of the proxy)."""
    try:
        reader, writer = await _open(proxy)
    except ConnectionResetError:
        return
    try:
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(100), 5)
    finally:
        await _close(writer)


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), 10)


async def test_forwards_both_ways_and_counts(echo: Target) -> None:
    with FaultProxy(echo.port) as proxy:
        reader, writer = await _open(proxy)
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"hello"
        stats = proxy.stats()
        assert (stats.connections, stats.active, stats.bytes_up, stats.bytes_down) == (1, 1, 5, 5)
        await _close(writer)
        await proxy.wait_for_async(lambda s: s.active == 0, 5)
    assert echo.accepted == 1


async def test_target_eof_reaches_client_after_all_data(source: Target) -> None:
    with FaultProxy(source.port) as proxy:
        reader, writer = await _open(proxy)
        data = await _read_all(reader)
        assert data == bytes(i % 251 for i in range(1000))
        await _close(writer)
        await proxy.wait_for_async(lambda s: s.active == 0, 5)
        assert proxy.stats().bytes_down == 1000


async def test_latency_delays_each_direction(echo: Target) -> None:
    with FaultProxy(echo.port) as proxy:
        proxy.set_latency(0.2)
        reader, writer = await _open(proxy)
        started = time.monotonic()
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        # 0.2 s up + 0.2 s down: a lower bound, true however slow the machine is.
        assert time.monotonic() - started >= 0.35
        await _close(writer)


async def test_bandwidth_cap_paces_bytes(source: Target) -> None:
    with FaultProxy(source.port) as proxy:
        proxy.set_bandwidth(2000)
        reader, writer = await _open(proxy)
        started = time.monotonic()
        assert len(await _read_all(reader)) == 1000
        assert time.monotonic() - started >= 0.4  # 1000 B at 2000 B/s is 0.5 s at least
        await _close(writer)


async def test_stall_holds_current_and_new_connections_until_resume(echo: Target) -> None:
    with FaultProxy(echo.port) as proxy:
        reader, writer = await _open(proxy)
        writer.write(b"a")
        assert await asyncio.wait_for(reader.readexactly(1), 5) == b"a"
        proxy.stall()
        writer.write(b"b")
        reader2, writer2 = await _open(proxy)
        writer2.write(b"c")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(1), 0.3)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader2.readexactly(1), 0.1)
        assert proxy.stats().bytes_up == 1  # nothing forwarded while stalled
        assert proxy.stats().active == 2  # but both connections are held open
        proxy.resume()
        assert await asyncio.wait_for(reader.readexactly(1), 5) == b"b"
        assert await asyncio.wait_for(reader2.readexactly(1), 5) == b"c"
        await _close(writer)
        await _close(writer2)


async def test_reset_all_sends_rst_to_both_sides(echo: Target) -> None:
    with FaultProxy(echo.port) as proxy:
        reader, writer = await _open(proxy)
        writer.write(b"x")
        await asyncio.wait_for(reader.readexactly(1), 5)
        assert proxy.reset_all() == 1
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(100), 5)
        await proxy.wait_for_async(lambda s: s.active == 0, 5)
        assert proxy.stats().resets == 1
        await _close(writer)
    deadline = time.monotonic() + 5
    while not echo.errors and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert any(isinstance(e, ConnectionResetError) for e in echo.errors)


async def test_close_after_cuts_every_connection_at_that_byte(source: Target) -> None:
    with FaultProxy(source.port) as proxy:
        proxy.close_after(137)
        for _ in range(2):
            reader, writer = await _open(proxy)
            data = await _read_all(reader)
            assert data == bytes(i % 251 for i in range(137))
            await _close(writer)
        assert proxy.stats().cuts == 2
        proxy.close_after(None)
        reader, writer = await _open(proxy)
        assert len(await _read_all(reader)) == 1000
        await _close(writer)


async def test_close_after_with_reset(source: Target) -> None:
    with FaultProxy(source.port) as proxy:
        proxy.close_after(10, reset=True)
        reader, writer = await _open(proxy)
        received = b""
        with pytest.raises(ConnectionResetError):
            while chunk := await asyncio.wait_for(reader.read(100), 5):
                received += chunk
        assert len(received) <= 10
        assert proxy.stats().resets == 1
        await _close(writer)


async def test_reject_new_resets_without_reaching_the_target(echo: Target) -> None:
    with FaultProxy(echo.port) as proxy:
        proxy.reject_new()
        await _expect_reset(proxy)
        assert proxy.stats().rejected == 1
        proxy.reject_new(False)
        reader, writer = await _open(proxy)
        writer.write(b"ok")
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"ok"
        await _close(writer)
    assert echo.accepted == 1


async def test_unreachable_target_resets_the_client() -> None:
    async for target in _serve(_echo):
        dead_port = target.port
    with FaultProxy(dead_port) as proxy:
        await _expect_reset(proxy)
        assert proxy.stats().upstream_failures == 1


async def test_stop_aborts_connections_and_joins_the_thread(echo: Target) -> None:
    proxy = FaultProxy(echo.port).start()
    reader, writer = await _open(proxy)
    writer.write(b"x")
    await asyncio.wait_for(reader.readexactly(1), 5)
    proxy.stop()
    assert proxy._thread is None
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), 5)
    await _close(writer)
    proxy.stop()  # idempotent
