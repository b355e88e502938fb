"""A small TCP fault proxy for tests (what Toxiproxy does, in one asyncio file).

Put it between any client and server (HTTP, SSE, Redis): it listens on a free port of
127.0.0.1, forwards every byte to the target, and breaks the traffic on demand::

    with FaultProxy(server.port) as proxy:
        url = proxy.url("http")           # point the client here
        proxy.set_latency(0.05)           # each chunk arrives 50 ms after it was read
        proxy.set_bandwidth(10_000)       # bytes per second, each direction, per connection
        proxy.stall(); proxy.resume()     # hold every connection (and new ones) silent
        proxy.reset_all()                 # RST (SO_LINGER 0) both sides of every connection
        proxy.close_after(300)            # cut each connection after 300 bytes downstream
        proxy.reject_new(True)            # new connections are reset right after accept
        proxy.clear()                     # all faults off
        proxy.wait_for(lambda s: s.connections >= 2)   # stats: counts of connections/bytes

The proxy runs its own event loop in a background thread, so it works the same under sync and
async tests; control methods are thread-safe and return once the fault is in force. "Up" is
client -> target, "down" is target -> client. Every connection is owned: ``stop()`` (or leaving
the ``with`` block) aborts all of them, cancels and awaits every task and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["FaultProxy", "ProxyStats"]

T = TypeVar("T")
_EOF = b""  # queue sentinel: the source closed cleanly
_CHUNK = 64 * 1024
_QUEUE_CHUNKS = 16  # per direction: a stalled link stops reading (TCP backpressure)


@dataclass(frozen=True)
class ProxyStats:
    """A snapshot. ``connections`` counts every accepted connection (``rejected`` included)."""

    connections: int
    active: int
    rejected: int
    upstream_failures: int  # accepted, but the target could not be reached
    resets: int  # connections reset by ``reset_all`` or ``close_after(..., reset=True)``
    cuts: int  # connections closed by ``close_after``
    bytes_up: int
    bytes_down: int


async def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST: SO_LINGER on, 0 s, then drop the transport without flushing."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 2.0)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 2.0)


class _Link:
    """One proxied connection: two directions, each a reader task and a writer task."""

    def __init__(
        self,
        proxy: FaultProxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        target: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.client = client
        self.target = target
        self.down_bytes = 0
        self.done = asyncio.Event()
        self.reset = False  # end with RST instead of FIN

    def abort(self) -> None:
        self.reset = True
        self.done.set()

    async def run(self) -> None:
        up: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(_QUEUE_CHUNKS)
        down: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(_QUEUE_CHUNKS)
        tasks = [
            asyncio.create_task(self._read(self.client[0], up)),
            asyncio.create_task(self._read(self.target[0], down)),
            asyncio.create_task(self._write(up, self.target[1], downstream=False)),
            asyncio.create_task(self._write(down, self.client[1], downstream=True)),
        ]
        try:
            await self.done.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for _, writer in (self.client, self.target):
                if self.reset:
                    await _abort(writer)
                else:
                    await _close(writer)

    async def _read(
        self, reader: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes] | None]
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await reader.read(_CHUNK)
                await queue.put((loop.time(), data))
                if not data:
                    return
        except OSError:
            await queue.put(None)  # the source was reset: reset the other side too

    async def _write(
        self,
        queue: asyncio.Queue[tuple[float, bytes] | None],
        writer: asyncio.StreamWriter,
        *,
        downstream: bool,
    ) -> None:
        proxy = self.proxy
        loop = asyncio.get_running_loop()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    self.abort()
                    return
                stamp, data = item
                wait = stamp + proxy._latency - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data == _EOF:  # a clean close is delayed and held like data
                    await proxy._flowing.wait()
                    self.done.set()
                    return
                cut = False
                if downstream and proxy._close_after is not None:
                    allowed = max(0, proxy._close_after - self.down_bytes)
                    if allowed <= len(data):
                        data, cut = data[:allowed], True
                await self._send(writer, data, downstream=downstream)
                if cut:
                    proxy._cuts += 1
                    if proxy._close_after_reset:
                        proxy._resets += 1
                        self.abort()
                    else:
                        self.done.set()
                    return
        except OSError:
            self.abort()

    async def _send(self, writer: asyncio.StreamWriter, data: bytes, *, downstream: bool) -> None:
        proxy = self.proxy
        view = memoryview(data)
        while view:
            await proxy._flowing.wait()
            rate = proxy._bandwidth
            piece = view if rate is None else view[: max(1, rate // 20)]
            # counted before the write: the peer (another thread's loop) may read the bytes
            # and ask for the counts before this task runs again
            if downstream:
                self.down_bytes += len(piece)
                proxy._bytes_down += len(piece)
            else:
                proxy._bytes_up += len(piece)
            writer.write(piece)
            await writer.drain()
            view = view[len(piece) :]
            if rate is not None:
                await asyncio.sleep(len(piece) / rate)


class FaultProxy:
    """TCP proxy from ``127.0.0.1:port`` to ``target_host:target_port`` with runtime faults.

    Faults apply to current and new connections while set. ``close_after(n)`` counts the
    bytes each connection has sent downstream since it opened, so every connection (current
    or new) forwards at most ``n`` bytes to its client and is then closed (FIN, or RST with
    ``reset=True``). A cut therefore lands wherever byte ``n`` falls: mid-frame.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", *, port: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = "127.0.0.1"
        self.port = port
        self._latency = 0.0
        self._bandwidth: int | None = None
        self._close_after: int | None = None
        self._close_after_reset = False
        self._reject = False
        self._connections = 0
        self._rejected = 0
        self._upstream_failures = 0
        self._resets = 0
        self._cuts = 0
        self._bytes_up = 0
        self._bytes_down = 0
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._stop: asyncio.Event
        self._flowing: asyncio.Event

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        if self._thread is not None:
            raise RuntimeError("FaultProxy already started")
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("FaultProxy did not start within 10 s")
        if self._start_error is not None:
            self._thread.join(5)
            raise RuntimeError("FaultProxy failed to start") from self._start_error
        return self

    def stop(self) -> None:
        """Abort every connection, stop listening, join the thread. Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(self._stop.set)
        thread.join(10)
        if thread.is_alive():
            raise RuntimeError("FaultProxy thread did not stop within 10 s")
        self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://{self.host}:{self.port}"

    # -- faults (thread-safe; in force when the call returns) --------------------------------
    def set_target(self, port: int, host: str = "127.0.0.1") -> None:
        """New connections go to this target (current ones keep theirs)."""
        self.target_host, self.target_port = host, port

    def set_latency(self, seconds: float) -> None:
        """Deliver each chunk ``seconds`` after it was read (both directions, order kept)."""
        if seconds < 0:
            raise ValueError("latency must not be negative")
        self._latency = seconds

    def set_bandwidth(self, bytes_per_second: int | None) -> None:
        """Cap each direction of each connection at ``bytes_per_second`` (``None``: no cap)."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError("bandwidth must be positive or None")
        self._bandwidth = bytes_per_second

    def stall(self) -> None:
        """Stop forwarding on every connection, current and new; hold them all open."""
        self._call(self._set_flowing(False))

    def resume(self) -> None:
        """Undo :meth:`stall`: held bytes flow again, in order."""
        self._call(self._set_flowing(True))

    def reset_all(self) -> int:
        """Reset (RST) both sides of every current connection; return how many."""
        return self._call(self._reset_all())

    def close_after(self, n_bytes: int | None, *, reset: bool = False) -> None:
        """Close each connection once it has forwarded ``n_bytes`` downstream (``None``: off)."""
        if n_bytes is not None and n_bytes < 0:
            raise ValueError("n_bytes must not be negative")
        self._close_after_reset = reset
        self._close_after = n_bytes

    def reject_new(self, reject: bool = True) -> None:
        """Reset new connections right after accepting them (the target sees nothing)."""
        self._reject = reject

    def clear(self) -> None:
        """Turn every fault off (connections already cut stay cut)."""
        self._latency = 0.0
        self._bandwidth = None
        self._close_after = None
        self._reject = False
        self.resume()

    # -- observation -------------------------------------------------------------------------
    def stats(self) -> ProxyStats:
        return ProxyStats(
            connections=self._connections,
            active=len(self._links),
            rejected=self._rejected,
            upstream_failures=self._upstream_failures,
            resets=self._resets,
            cuts=self._cuts,
            bytes_up=self._bytes_up,
            bytes_down=self._bytes_down,
        )

    def wait_for(
        self, predicate: Callable[[ProxyStats], bool], timeout: float = 10.0
    ) -> ProxyStats:
        """Poll the stats until ``predicate`` holds (blocking; for sync tests)."""
        deadline = time.monotonic() + timeout
        while not predicate(stats := self.stats()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"proxy condition not met within {timeout} s: {stats}")
            time.sleep(0.01)
        return stats

    async def wait_for_async(
        self, predicate: Callable[[ProxyStats], bool], timeout: float = 10.0
    ) -> ProxyStats:
        """Poll the stats until ``predicate`` holds, without blocking the caller's loop."""
        async with asyncio.timeout(timeout):
            while not predicate(stats := self.stats()):
                await asyncio.sleep(0.01)
        return stats

    # -- the proxy's own loop ----------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("FaultProxy is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _set_flowing(self, flowing: bool) -> None:
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _reset_all(self) -> int:
        links = list(self._links)
        for link in links:
            link.abort()
        self._resets += len(links)
        return len(links)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start()
            self._start_error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._flowing = asyncio.Event()
        self._flowing.set()
        server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for link in list(self._links):
                link.abort()
            handlers = list(self._handlers)
            await asyncio.gather(*handlers, return_exceptions=True)
            await server.wait_closed()
            self._loop = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._connections += 1
        try:
            if self._reject or self._stop.is_set():
                self._rejected += 1
                await _abort(writer)
                return
            try:
                target = await asyncio.wait_for(
                    asyncio.open_connection(self.target_host, self.target_port), 5.0
                )
            except (OSError, TimeoutError):
                self._upstream_failures += 1
                await _abort(writer)
                return
            link = _Link(self, (reader, writer), target)
            self._links.add(link)
            try:
                await link.run()
            finally:
                self._links.discard(link)
        finally:
            self._handlers.discard(task)
