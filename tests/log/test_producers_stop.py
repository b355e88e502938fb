"""ProducerRunner stops (LLM needs): the producer sees the reason and writes its closing tail
while the stream is still open, on this instance or another (two runners sharing one log);
an orphaned stream is ended anyway; a second cancellation never skips ending the stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mianzhang.log import LogEntry, MemoryEventLog, ProducerRunner, StreamState
from mianzhang.log._producers import cancel_marker
from tests._support.wait import eventually
from tests.log._util import SlowCloseLog


class Recorder:
    """A producer that yields ``first`` entries, then waits forever; when cancelled it records
    the reason and appends a ``tail`` event itself (as the LLM producers do)."""

    def __init__(self, log: MemoryEventLog, stream: str, first: int = 1) -> None:
        self.log = log
        self.stream = stream
        self.first = first
        self.reasons: list[tuple[object, ...]] = []
        self.closed = asyncio.Event()

    async def __call__(self) -> AsyncIterator[LogEntry]:
        try:
            for i in range(self.first):
                yield LogEntry(f"e{i}")
            await asyncio.Event().wait()
            yield LogEntry("never")
        except asyncio.CancelledError as exc:
            self.reasons.append(exc.args)
            await self.log.append(self.stream, "tail")
            raise
        finally:
            self.closed.set()


async def data(log: MemoryEventLog, stream: str) -> list[str]:
    _, events = await log.read(stream)
    return [e.data for e in events]


async def wait_length(log: MemoryEventLog, stream: str, n: int) -> None:
    async def long_enough() -> bool:
        info = await log.info(stream)
        return info is not None and info.length >= n

    await eventually(long_enough, message=f"{stream} never held {n} events")


async def started(log: MemoryEventLog, runner: ProducerRunner, rec: Recorder) -> None:
    await runner.start(rec.stream, rec(), background=True)
    await wait_length(log, rec.stream, rec.first)


async def state(log: MemoryEventLog, stream: str) -> StreamState:
    info = await log.info(stream)
    assert info is not None
    return info.state


async def test_stop_on_the_owning_instance_lets_the_producer_write_its_tail() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log, poll_interval=0.01)
        rec = Recorder(log, "s")
        try:
            await started(log, runner, rec)
            assert await runner.cancel("s") is True
            assert await state(log, "s") is StreamState.CANCELLED  # ended when cancel returns
            assert await data(log, "s") == ["e0", "tail"]
            assert rec.reasons == [("stopped",)]
        finally:
            await runner.aclose()


async def test_stop_from_another_instance_goes_through_the_owner() -> None:
    async with MemoryEventLog() as log:
        owner = ProducerRunner(log, poll_interval=0.01)
        other = ProducerRunner(log, poll_interval=0.01)
        rec = Recorder(log, "s")
        try:
            await started(log, owner, rec)
            assert other.running() == []
            async with asyncio.timeout(10):
                assert await other.cancel("s") is True
            assert await state(log, "s") is StreamState.CANCELLED
            assert await data(log, "s") == ["e0", "tail"]  # the tail got in before the end
            assert rec.reasons == [("stopped",)]
            assert await log.info(cancel_marker("s")) is not None  # the request, expiring
        finally:
            await owner.aclose()
            await other.aclose()


async def test_stop_without_any_owner_marks_the_stream_cancelled_after_the_timeout() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log, poll_interval=0.01, cancel_timeout=0.2)
        await log.create("orphan")
        await log.append("orphan", "x")
        try:
            assert await runner.cancel("orphan") is True
        finally:
            await runner.aclose()
        assert await state(log, "orphan") is StreamState.CANCELLED


class BlockingAppendLog(MemoryEventLog):
    """Appends (but the tail's) block while ``gate`` is clear: the runner is then awaiting the
    log, not the producer, when the cancellation hits."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def append(self, stream: str, data: str, **kwargs: object) -> str:  # type: ignore[override]
        if data != "tail" and not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        return await super().append(stream, data, **kwargs)  # type: ignore[arg-type]


async def test_a_stop_between_two_items_is_thrown_into_the_producer_with_its_reason() -> None:
    async with BlockingAppendLog() as log:
        runner = ProducerRunner(log, poll_interval=0.01)
        rec = Recorder(log, "s", first=2)
        try:
            await runner.start("s", rec(), background=True)
            async with asyncio.timeout(10):
                await log.waiting.wait()  # the producer is parked at its first yield
            assert await runner.cancel("s") is True
        finally:
            await runner.aclose()
        assert rec.reasons == [("stopped",)]
        assert await data(log, "s") == ["tail"]


async def test_abandonment_and_shutdown_reach_the_producer_with_their_reason() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log, grace_period=0.05, poll_interval=0.01)
        abandoned = Recorder(log, "a")
        kept = Recorder(log, "b")
        await runner.start("a", abandoned(), background=False)
        await started(log, runner, kept)
        async with asyncio.timeout(10):
            await abandoned.closed.wait()
        await runner.aclose()
        assert abandoned.reasons == [("abandoned",)]
        assert kept.reasons == [("shutdown",)]
        assert await data(log, "b") == ["e0", "tail"]
        assert await state(log, "a") is StreamState.CANCELLED
        assert await state(log, "b") is StreamState.CANCELLED
        with pytest.raises(Exception, match="closed"):
            await runner.start("c", Recorder(log, "c")(), background=True)


async def test_a_second_cancellation_while_finishing_still_ends_the_stream() -> None:
    async with SlowCloseLog() as log:
        runner = ProducerRunner(log, poll_interval=0.01)
        rec = Recorder(log, "s")
        await started(log, runner, rec)
        stop = asyncio.create_task(runner.cancel("s"))
        try:
            async with asyncio.timeout(10):
                await log.closing.wait()  # the runner is ending the stream
            shutdown = asyncio.create_task(runner.aclose())  # cancels the producer task again
            # a window for a wrong shutdown to finish early: the sleep is the stimulus of a
            # negative assertion (there is no event for "still waiting"), not synchronisation
            await asyncio.sleep(0.05)
            assert not shutdown.done()  # it waits for the stream to be ended
            log.hold.set()
            async with asyncio.timeout(10):
                await shutdown
                assert await stop is True
        finally:
            stop.cancel()
        assert await data(log, "s") == ["e0", "tail"]
        assert await state(log, "s") is StreamState.CANCELLED


async def test_a_producer_stopped_before_its_task_first_ran_still_ends_its_stream() -> None:
    """A task cancelled before its first step never runs its body: the runner defers the
    cancel to the start of its body, so the stream's end (and on_end) still happen."""
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log)
        ends: list[str] = []

        async def on_end() -> None:
            ends.append("end")

        async def never() -> AsyncIterator[LogEntry]:
            await asyncio.Event().wait()
            yield LogEntry("never")

        await runner.start("s", never(), background=True, on_end=on_end)
        assert await runner.cancel("s")  # before the producer's task ever ran
        assert await state(log, "s") is StreamState.CANCELLED
        assert ends == ["end"]
        await runner.start("t", never(), background=True, on_end=on_end)
        await runner.aclose()  # the same for a shutdown
        assert await state(log, "t") is StreamState.CANCELLED
        assert ends == ["end", "end"]
