"""ProducerRunner: ownership, the two policies, cross-instance cancel, failures, retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mianzhang import BackendUnavailable
from mianzhang.log import LogEntry, LogEvent, MemoryEventLog, ProducerRunner, StreamState
from tests._support.wait import eventually


async def _wait_state(log: MemoryEventLog, stream: str, state: StreamState) -> None:
    async def reached() -> bool:
        info = await log.info(stream)
        return info is not None and info.state is state

    await eventually(reached, message=f"{stream} never became {state}")


class Endless:
    """A producer that appends until cancelled and records that its ``finally`` ran."""

    def __init__(self) -> None:
        self.produced = 0
        self.finalised = asyncio.Event()

    async def __call__(self) -> AsyncIterator[LogEntry]:
        try:
            while True:
                self.produced += 1
                yield LogEntry(str(self.produced))
                await asyncio.sleep(0.005)
        finally:
            self.finalised.set()


async def test_a_producer_runs_to_the_end_and_closes_its_stream() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log)

        async def three() -> AsyncIterator[LogEntry]:
            for i in range(3):
                yield LogEntry(str(i), event="n")

        await runner.start("s", three(), background=True)
        await _wait_state(log, "s", StreamState.CLOSED)
        _, events = await log.read("s")
        assert [(e.data, e.event) for e in events] == [("0", "n"), ("1", "n"), ("2", "n")]
        await runner.aclose()


async def test_background_producer_keeps_running_without_readers() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log, grace_period=0.05, poll_interval=0.01)
        producer = Endless()
        await runner.start("s", producer(), background=True)
        await eventually(lambda: producer.produced >= 40)  # well past several grace periods
        assert not producer.finalised.is_set()
        assert runner.running() == ["s"]
        await runner.aclose()
        assert producer.finalised.is_set()
        assert (await log.info("s")).state is StreamState.CANCELLED  # type: ignore[union-attr]


async def test_abandoned_producer_is_cancelled_after_the_grace_period() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log, grace_period=0.2, poll_interval=0.02)
        producer = Endless()
        await runner.start("s", producer(), background=False)
        async with asyncio.timeout(10):
            await producer.finalised.wait()
        await _wait_state(log, "s", StreamState.CANCELLED)
        assert runner.running() == []
        await runner.aclose()


async def test_a_reader_keeps_the_producer_alive() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log, grace_period=0.1, poll_interval=0.01)
        producer = Endless()
        await runner.start("s", producer(), background=False)
        seen = 0
        async for item in log.follow("s"):
            assert isinstance(item, LogEvent)
            seen += 1
            if seen == 60:  # ~0.3 s: three grace periods with a reader present
                break
        assert not producer.finalised.is_set()
        async with asyncio.timeout(10):  # the reader left: now it is abandoned
            await producer.finalised.wait()
        await runner.aclose()


async def test_cancel_from_another_runner_stops_the_owner() -> None:
    async with MemoryEventLog() as log:
        owner = ProducerRunner(log, poll_interval=0.01)
        other = ProducerRunner(log, poll_interval=0.01)  # another instance on the same log
        producer = Endless()
        await owner.start("s", producer(), background=True)
        assert await other.cancel("s") is True
        async with asyncio.timeout(10):
            await producer.finalised.wait()
        assert (await log.info("s")).state is StreamState.CANCELLED  # type: ignore[union-attr]
        assert await other.cancel("s") is False  # already ended
        assert await other.cancel("missing") is False
        await owner.aclose()
        await other.aclose()


async def test_a_failing_producer_leaves_an_error_event_and_a_closed_stream() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log)

        async def failing() -> AsyncIterator[LogEntry]:
            yield LogEntry("one")
            raise RuntimeError("secret internals")

        await runner.start("s", failing(), background=True)
        await _wait_state(log, "s", StreamState.CLOSED)
        _, events = await log.read("s")
        assert [e.event for e in events] == [None, "error"]
        assert "secret" not in events[1].data
        assert '"type":"internal_error"' in events[1].data
        await runner.aclose()


async def test_one_producer_per_stream() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log)
        await runner.start("s", Endless()(), background=True)
        with pytest.raises(Exception, match="already has a producer"):
            await runner.start("s", Endless()(), background=True)
        await runner.aclose()


class FlakyLog(MemoryEventLog):
    """Fails appends with BackendUnavailable a few times, once *after* applying the append."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def append(self, stream: str, data: str, **kwargs: object) -> str:
        self.failures += 1
        if self.failures == 2:  # applied, but the reply is lost
            await super().append(stream, data, **kwargs)  # type: ignore[arg-type]
            raise BackendUnavailable("reply lost")
        if self.failures in (4, 5):
            raise BackendUnavailable("down")
        return await super().append(stream, data, **kwargs)  # type: ignore[arg-type]


async def test_appends_are_retried_while_the_backend_is_down_without_duplicates() -> None:
    log = FlakyLog()
    try:
        runner = ProducerRunner(log)

        async def five() -> AsyncIterator[LogEntry]:
            for i in range(5):
                yield LogEntry(str(i))

        await runner.start("s", five(), background=True)
        await _wait_state(log, "s", StreamState.CLOSED)
        _, events = await log.read("s")
        assert [e.data for e in events] == ["0", "1", "2", "3", "4"]
        await runner.aclose()
    finally:
        await log.aclose()


class RecordingLog(MemoryEventLog):
    """Records the idempotency window of every append."""

    def __init__(self) -> None:
        super().__init__()
        self.windows: list[float | None] = []

    async def append(self, stream: str, data: str, **kwargs: object) -> str:
        self.windows.append(kwargs.get("idempotency_ttl"))  # type: ignore[arg-type]
        return await super().append(stream, data, **kwargs)  # type: ignore[arg-type]


async def test_idempotency_keys_are_kept_only_for_the_retry_window() -> None:
    # one key per appended event: kept an hour (the log's default), a long generation leaves
    # thousands of keys in Redis long after its stream expired (found by bench/soak.py)
    async with RecordingLog() as log:
        runner = ProducerRunner(log, append_retry_timeout=7.0)

        async def two() -> AsyncIterator[LogEntry]:
            yield LogEntry("a")
            yield LogEntry("b")

        await runner.start("s", two(), background=True)
        await _wait_state(log, "s", StreamState.CLOSED)
        assert log.windows[:2] == [14.0, 14.0]
        await runner.aclose()
