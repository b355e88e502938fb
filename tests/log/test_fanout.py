"""log/_fanout.py: caught-up followers parked on their stream, served by one pass per batch of
appends (memory and Redis): every parked reader gets the same encoded bytes once; a reader
that refuses, or that the stream cannot serve, resumes on its own path without gap or
duplicate; the end, a deletion and the log's close reach parked readers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from mianzhang._errors import LogError
from mianzhang.log import (
    EventLog,
    LogEntry,
    LogEvent,
    MemoryEventLog,
    RedisEventLog,
    Reset,
    StreamState,
)
from mianzhang.log._fanout import DETACH_BATCH, PIECE, Fanout, Push
from mianzhang.log.serve import encode_event
from tests._support.wait import eventually

STREAM = "fan"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str | None:
    """``None`` for memory, else the session redis-server's URL."""
    return None if request.param == "memory" else request.getfixturevalue("redis_server").url


@pytest.fixture
async def log(backend: str | None) -> AsyncIterator[EventLog]:
    made: Any
    if backend is None:
        made = MemoryEventLog()
    else:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(backend)
        try:
            await client.flushall()
        finally:
            await client.aclose()
        made = RedisEventLog(backend, lease_idle=0.2, lease_check=0.05)
    try:
        yield made
    finally:
        await made.aclose()


def fanout_of(log: EventLog, stream: str = STREAM) -> Fanout:
    if isinstance(log, MemoryEventLog):
        notifier = log._streams[stream].notifier
    else:
        assert isinstance(log, RedisEventLog)
        notifier = log._watcher._watches[log._keys(stream).log].notifier
    assert isinstance(notifier, Fanout)
    return notifier


class Reader:
    """One follower with a push: what was pushed (chunks), what it yielded itself, and every
    event's seq in arrival order whichever way it came."""

    def __init__(self, log: EventLog, encode: Callable[[LogEvent], bytes], after: str | None):
        self.chunks: list[tuple[bytes, int]] = []
        self.yielded: list[LogEvent | Reset] = []
        self.arrivals: list[int] = []
        self.calls = 0
        self.refuse: Callable[[int], bool] = lambda call: False
        self.error: BaseException | None = None
        self.ended = False
        push = Push(self.deliver, encode)
        follow: Any = log.follow
        self.task = asyncio.create_task(self._run(follow(STREAM, after, push=push)))

    def deliver(self, chunk: bytes, items: int) -> bool:
        self.calls += 1
        if self.refuse(self.calls):
            return False
        self.chunks.append((chunk, items))
        ids = [line for line in chunk.split(b"\n") if line.startswith(b"id: ")]
        self.arrivals += [int(line.rsplit(b"-", 1)[1]) for line in ids]
        return True

    async def _run(self, items: AsyncIterator[LogEvent | Reset]) -> None:
        try:
            async for item in items:
                self.yielded.append(item)
                if isinstance(item, LogEvent):
                    self.arrivals.append(item.seq)
        except LogError as exc:
            self.error = exc
        self.ended = True

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class CountingEncoder:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, event: LogEvent) -> bytes:
        self.calls += 1
        return encode_event(event)


async def start_readers(log: EventLog, n: int, encode: Callable[[LogEvent], bytes]) -> list[Reader]:
    info = await log.create(STREAM)
    readers = [Reader(log, encode, info.last_id) for _ in range(n)]
    await eventually(lambda: parked_on(log) == n)
    return readers


def parked_on(log: EventLog) -> int:
    try:
        return fanout_of(log).parked
    except KeyError:
        return 0


async def test_one_append_reaches_every_parked_reader_once_with_the_same_bytes(
    log: EventLog,
) -> None:
    encode = CountingEncoder()
    readers = await start_readers(log, 50, encode)
    try:
        await log.append(STREAM, "hello")
        await eventually(lambda: all(reader.chunks for reader in readers))
        first = readers[0].chunks[0][0]
        assert first.endswith(b"data: hello\n\n")
        for reader in readers:
            assert reader.calls == 1
            assert reader.chunks == [(first, 1)]
            assert reader.chunks[0][0] is first  # one bytes object for all: encoded once
            assert reader.yielded == []  # pushed, not yielded
        assert encode.calls == 1
        assert parked_on(log) == 50  # still parked for the next event
    finally:
        for reader in readers:
            await reader.stop()


async def test_a_burst_of_appends_is_one_pass_and_one_chunk_per_reader() -> None:
    async with MemoryEventLog() as log:
        encode = CountingEncoder()
        readers = await start_readers(log, 3, encode)
        try:
            for n in range(5):  # no await that yields between the appends
                await log.append(STREAM, f"e{n}")
            await eventually(lambda: all(reader.chunks for reader in readers))
            chunk, items = readers[0].chunks[0]
            assert items == 5
            assert chunk == b"".join(
                encode_event(LogEvent(f"{log._streams[STREAM].epoch}-{n + 1}", n + 1, f"e{n}"))
                for n in range(5)
            )
            assert all(reader.chunks == [(chunk, 5)] for reader in readers)
            assert encode.calls == 5
        finally:
            for reader in readers:
                await reader.stop()


async def test_a_refusing_reader_resumes_on_its_own_path_without_gap_or_duplicate(
    log: EventLog,
) -> None:
    readers = await start_readers(log, 3, encode_event)
    slow = readers[0]
    slow.refuse = lambda call: call == 2  # its connection is busy for the second event
    try:
        await log.append(STREAM, "a")
        await eventually(lambda: all(len(reader.chunks) == 1 for reader in readers))
        await log.append(STREAM, "b")
        # the others got "b" pushed in the very pass that the slow one refused it
        await eventually(lambda: all(len(reader.chunks) == 2 for reader in readers[1:]))
        await eventually(lambda: slow.arrivals == [1, 2])  # "b" yielded by its own follow
        assert [item.data for item in slow.yielded if isinstance(item, LogEvent)] == ["b"]
        await eventually(lambda: parked_on(log) == 3)  # caught up: parked again
        await log.append(STREAM, "c")
        await eventually(lambda: all(reader.arrivals == [1, 2, 3] for reader in readers))
        assert len(slow.chunks) == 2  # "a" and "c" pushed, "b" yielded
    finally:
        for reader in readers:
            await reader.stop()


async def test_a_reader_that_cannot_encode_an_event_meets_it_on_its_own_path(
    log: EventLog,
) -> None:
    def picky(event: LogEvent) -> bytes:
        if event.data == "bad":
            raise ValueError("cannot encode")
        return encode_event(event)

    readers = await start_readers(log, 2, picky)
    try:
        await log.append(STREAM, "bad")
        await eventually(lambda: all(reader.arrivals == [1] for reader in readers))
        assert all(reader.chunks == [] for reader in readers)
        assert all([i.data for i in r.yielded] == ["bad"] for r in readers)  # type: ignore[union-attr]
    finally:
        for reader in readers:
            await reader.stop()


async def test_the_end_of_the_stream_reaches_parked_readers(log: EventLog) -> None:
    readers = await start_readers(log, 4, encode_event)
    await log.append(STREAM, "last")
    await log.close(STREAM, state=StreamState.CLOSED)
    await eventually(lambda: all(reader.ended for reader in readers))
    for reader in readers:
        assert reader.arrivals == [1]
        assert reader.error is None


async def test_an_expired_lease_reaches_parked_readers_with_its_entries_once(
    log: EventLog,
) -> None:
    readers = await start_readers(log, 3, encode_event)
    await log.append(STREAM, "a")
    await eventually(lambda: all(reader.arrivals == [1] for reader in readers))
    lost = LogEntry('{"type":"producer_lost"}', "error")
    assert await log.lease(STREAM, "producer", ttl=0.2, entries=[lost])
    # nobody renews: the backend applies the lease (memory: its timer; Redis: the probe)
    await eventually(lambda: all(reader.ended for reader in readers))
    for reader in readers:
        assert reader.error is None
        assert reader.arrivals == [1, 2]  # the entry once, pushed or yielded
    info = await log.info(STREAM)
    assert info is not None
    assert info.state is StreamState.FAILED
    assert parked_on(log) == 0


async def test_a_cancelled_reader_leaves_the_fanout(log: EventLog) -> None:
    readers = await start_readers(log, 3, encode_event)
    await readers[0].stop()
    await eventually(lambda: parked_on(log) == 2)
    await log.append(STREAM, "x")
    await eventually(lambda: all(reader.chunks for reader in readers[1:]))
    assert readers[0].calls == 0
    for reader in readers[1:]:
        await reader.stop()


async def test_closing_the_memory_log_ends_parked_readers_with_log_error() -> None:
    log = MemoryEventLog()
    readers = await start_readers(log, 2, encode_event)
    await log.aclose()
    await eventually(lambda: all(reader.ended for reader in readers))
    assert all(isinstance(reader.error, LogError) for reader in readers)


async def test_a_reader_lapped_while_refusing_gets_a_reset_then_the_oldest_event() -> None:
    async with MemoryEventLog(max_events=2) as log:
        readers = await start_readers(log, 1, encode_event)
        reader = readers[0]
        reader.refuse = lambda call: True
        try:
            for n in range(4):  # one pass: refused; the ring keeps only the last two
                await log.append(STREAM, f"e{n}")
            await eventually(lambda: len(reader.yielded) == 3)
            reset, *events = reader.yielded
            assert isinstance(reset, Reset) and reset.reason == "retention"
            assert [e.seq for e in events if isinstance(e, LogEvent)] == [3, 4]
        finally:
            await reader.stop()


async def test_a_large_burst_goes_out_in_pieces_of_bounded_size() -> None:
    async with MemoryEventLog() as log:
        readers = await start_readers(log, 2, encode_event)
        try:
            data = "x" * 10_000
            for _ in range(20):  # 200 kB in one burst
                await log.append(STREAM, data)
            await eventually(lambda: all(len(r.arrivals) == 20 for r in readers))
            for reader in readers:
                assert reader.arrivals == list(range(1, 21))
                assert len(reader.chunks) > 1
                assert all(len(chunk) <= PIECE + 10_100 for chunk, _ in reader.chunks)
            assert [c for c, _ in readers[0].chunks] == [c for c, _ in readers[1].chunks]
        finally:
            for reader in readers:
                await reader.stop()


async def test_a_crowd_refusing_together_is_resumed_in_batches_between_passes() -> None:
    """Readers refusing in the same pass get no more pushes at once and are resumed at most
    ``DETACH_BATCH`` per loop iteration; a reader that keeps up is served between batches."""
    fanout = Fanout()
    events = [LogEvent(f"e-{n}", n, f"d{n}") for n in range(1, 4)]
    appended = 1

    def source(position: int, token: Any) -> list[LogEvent]:
        return events[position - 1 : appended]

    refused: list[int] = []

    def refuse(chunk: bytes, items: int) -> bool:
        refused.append(items)
        return False

    taken: list[bytes] = []

    def take(chunk: bytes, items: int) -> bool:
        taken.append(chunk)
        return True

    crowd = [fanout.park(Push(refuse, encode_event), 1, source, None) for _ in range(200)]
    fast = fanout.park(Push(take, encode_event), 1, source, None)
    fanout.notify()
    await asyncio.sleep(0)  # the pass: all 200 refuse, none resumed yet
    assert len(refused) == 200 and len(taken) == 1
    assert fanout.parked == 1 and not any(f.done() for f in crowd)
    appended = 2
    fanout.notify()  # the next pass runs between the batches, and skips the detached
    resumed = []
    for _ in range(4):
        await asyncio.sleep(0)
        resumed.append(sum(f.done() for f in crowd))
    assert resumed == [DETACH_BATCH, 2 * DETACH_BATCH, 3 * DETACH_BATCH, 200]
    assert len(refused) == 200  # no push after refusing
    assert len(taken) == 2 and not fast.done()
    assert {f.result() for f in crowd} == {1}  # each resumes where it refused
    fanout.release()
    assert fast.done() and fast.result() == 3
