"""Bulk streams take turns (``mianzhang._responses._turns``) behind a real uvicorn (uvloop,
httptools).

uvloop accepts one pending connection per loop iteration. If every busy stream produced a full
batch (``max_buffer``, 64 KiB) in every iteration, one iteration would cost a batch per busy
stream, and a new connection, which needs a few iterations to be accepted, read and answered,
would wait for a few batches of every busy stream. With turns an iteration makes about one
batch, so a new stream's first event costs a few batches in all.

The bound is a volume, not a time: the bytes that all bulk readers receive between a new
connection's ``connect()`` and its first event. With 200 bulk streams, the median over 20 new
streams must stay below one batch per bulk stream (200 x 64 KiB = 12.5 MiB). Measured when the
test was written: about 0.3 MiB with turns, about 31 MiB with ``Turns.take`` made a no-op in
the server process.

The client only counts bytes (one receive buffer shared by all bulk readers, no parsing), so
the server, not the client, is the bottleneck. The app's handlers are ``async def``: a sync
handler would run in the thread pool and measure thread hand-off instead of the loop.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass, field

import pytest

from mianzhang._responses import DEFAULT_MAX_BUFFER
from tests._support.procs import uvicorn_process

pytestmark = pytest.mark.e2e

APP = "tests.e2e.apps.fairness_app:app"
SERVER_ARGS = ("--loop", "uvloop", "--http", "httptools", "--workers", "1")
BULK_STREAMS = 200
NEW_STREAMS = 20
STREAMING = 1000  # bytes a bulk reader must have received to count as streaming (10 events)
RECV_BUFFER = 256 * 1024
TIMEOUT = 60.0
CLOSE_TIMEOUT = 5.0


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()


@dataclass
class Totals:
    """Bytes received by all bulk readers (headers included), and how many readers are past
    their current ``threshold`` (``reached`` is set once all are, or once one is lost)."""

    received: int = 0
    past_threshold: int = 0
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    lost: int = 0  # bulk connections closed before the end of the measurement: none should be


class Closing:
    """``closed`` is done once the connection is lost (awaited on the way out, so no socket
    outlives the test's loop)."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def mark_closed(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class BulkReader(asyncio.BufferedProtocol, Closing):
    """Counts what one bulk stream receives; reads into a buffer shared by all readers (its
    contents are never looked at)."""

    def __init__(self, totals: Totals, buffer: memoryview) -> None:
        Closing.__init__(self)
        self.totals = totals
        self.buffer = buffer
        self.received = 0
        self.threshold = STREAMING

    def rearm(self, more: int) -> None:
        """Count this reader again once it has received ``more`` bytes from now on."""
        self.threshold = self.received + more

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        before = self.received
        self.received += nbytes
        totals = self.totals
        totals.received += nbytes
        if before < self.threshold <= self.received:
            totals.past_threshold += 1
            if totals.past_threshold == BULK_STREAMS:
                totals.reached.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.totals.lost += 1
        self.totals.reached.set()  # wake the waiter: it checks ``lost``
        self.mark_closed()


class FirstEvent(asyncio.Protocol, Closing):
    """Resolves ``first_event`` with the bulk total at the moment this stream's first event
    (the first blank line after the headers) arrives."""

    def __init__(self, totals: Totals) -> None:
        Closing.__init__(self)
        self.totals = totals
        self.data = bytearray()
        self.first_event: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if self.first_event.done():
            return
        self.data += data
        head = self.data.find(b"\r\n\r\n")
        if head >= 0 and self.data.find(b"\n\n", head + 4) >= 0:
            if self.data.startswith(b"HTTP/1.1 200 "):
                self.first_event.set_result(self.totals.received)
            else:
                self.first_event.set_exception(AssertionError(bytes(self.data[:300])))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.first_event.done():
            self.first_event.set_exception(ConnectionError(f"closed before an event: {exc}"))
        self.mark_closed()


@dataclass
class Measurement:
    volumes: list[int]  # bulk bytes received while each new stream waited for its first event
    waits: list[float]  # seconds each new stream waited (reported, not asserted)


async def measure(port: int, path: str = "/one", timeout: float = TIMEOUT) -> Measurement:
    """Open ``BULK_STREAMS`` bulk streams and wait until all stream; then open ``NEW_STREAMS``
    ``/one`` streams one after another and measure each one's wait; then wait until every bulk
    stream has delivered one more batch (none stalled meanwhile). Every connection is aborted
    and its close awaited on the way out."""
    loop = asyncio.get_running_loop()
    totals = Totals()
    shared = memoryview(bytearray(RECV_BUFFER))
    connections: list[tuple[asyncio.BaseTransport, Closing]] = []
    readers: list[BulkReader] = []
    volumes: list[int] = []
    waits: list[float] = []

    async def open_bulk() -> None:
        transport, reader = await loop.create_connection(
            lambda: BulkReader(totals, shared), "127.0.0.1", port
        )
        connections.append((transport, reader))
        readers.append(reader)
        transport.write(request("/bulk"))

    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(open_bulk() for _ in range(BULK_STREAMS)))
            await totals.reached.wait()  # every bulk stream is past its first events
            assert not totals.lost, "a bulk stream was closed"

            totals.past_threshold = 0
            totals.reached.clear()
            for reader in readers:
                reader.rearm(DEFAULT_MAX_BUFFER)

            for _ in range(NEW_STREAMS):
                started_at = loop.time()
                before = totals.received
                transport, one = await loop.create_connection(
                    lambda: FirstEvent(totals), "127.0.0.1", port
                )
                connections.append((transport, one))
                transport.write(request(path))
                volumes.append(await one.first_event - before)
                waits.append(loop.time() - started_at)

            await totals.reached.wait()  # every bulk stream delivered one more batch
            assert not totals.lost, "a bulk stream was closed"
            return Measurement(volumes, waits)
    finally:
        for transport, _ in connections:
            transport.abort()
        if connections:
            await asyncio.wait(
                [closing.closed for _, closing in connections], timeout=CLOSE_TIMEOUT
            )


@pytest.mark.parametrize(
    "path",
    [
        "/one",
        # a plain ``def`` handler runs in the thread pool: the worker thread needs the GIL from
        # a loop kept busy by short iterations (the turns hand it over once per switch interval)
        "/one-sync",
    ],
)
async def test_a_new_stream_waits_for_less_than_a_batch_per_busy_stream(path: str) -> None:
    with uvicorn_process(APP, args=SERVER_ARGS, graceful_timeout=2) as server:
        result = await measure(server.port, path)
    median = statistics.median(result.volumes)
    bound = BULK_STREAMS * DEFAULT_MAX_BUFFER
    mib = [round(volume / 2**20, 2) for volume in result.volumes]
    ms = [round(wait * 1000) for wait in result.waits]
    assert median < bound, (
        f"median {median / 2**20:.2f} MiB of bulk traffic before a new stream's first event, "
        f"bound {bound / 2**20:.1f} MiB (one batch per bulk stream); MiB {mib}, ms {ms}"
    )
