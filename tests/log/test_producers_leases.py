"""ProducerRunner and producer leases in one process (the memory log): a producer whose task
ends without ending its stream, or a runner that stops renewing, loses its lease and its
readers get the producer's own "lost" entries and the end (state FAILED); a producer whose
lease is lost while it still runs is stopped, and cannot append to the failed stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import orjson
import pytest

from mianzhang.log import (
    LogEntry,
    LogEvent,
    MemoryEventLog,
    ProducerRunner,
    StreamState,
    _producers,
)
from mianzhang.log._protocol import PRODUCER_LOST
from tests._support.wait import eventually

from ._util import drain

TTL = 0.3


async def forever() -> AsyncIterator[LogEntry]:
    yield LogEntry("a")
    await asyncio.Event().wait()
    yield LogEntry("never")


async def two() -> AsyncIterator[LogEntry]:
    yield LogEntry("a")
    yield LogEntry("b")


def closing(reason: str) -> Sequence[LogEntry]:
    return [LogEntry(orjson.dumps({"lost": reason}).decode(), "gen.error")]


async def _state(log: MemoryEventLog, stream: str) -> StreamState | None:
    info = await log.info(stream)
    return None if info is None else info.state


async def test_a_producer_task_that_ends_without_ending_its_stream_fails_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def lost_end(*args: object) -> None:
        """The end of the stream never runs (what "the task died" means in one process)."""

    monkeypatch.setattr(_producers, "finish", lost_end)
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log, lease_ttl=TTL, poll_interval=0.05)
        await runner.start("s", two(), background=True)
        reader = asyncio.ensure_future(drain(log.follow("s")))
        got = await reader  # ends: the lease expired after the task was gone
        await runner.aclose()
    error = got[-1]
    assert isinstance(error, LogEvent) and error.event == "error"
    assert orjson.loads(error.data)["type"] == PRODUCER_LOST
    assert [e.data for e in got[:-1] if isinstance(e, LogEvent)] == ["a", "b"]


async def test_a_runner_that_stops_renewing_loses_its_streams() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log, lease_ttl=TTL, poll_interval=0.05)
        await runner.start("s", forever(), background=True, closing=closing)
        reader = asyncio.ensure_future(drain(log.follow("s")))
        await eventually(lambda: runner._watcher is not None)
        watcher = runner._watcher
        assert watcher is not None
        watcher.cancel()  # the renewals stop, as in a process that hangs or is cut off
        got = await reader
        assert [(e.data, e.event) for e in got if isinstance(e, LogEvent)] == [
            ("a", None),
            ('{"lost":"producer_lost"}', "gen.error"),  # closing("producer_lost"), at start
        ]
        assert await _state(log, "s") is StreamState.FAILED
        await runner.aclose()  # the producer is cancelled; it cannot write any more
        _, events = await log.read("s")
        assert len(events) == 2 and await _state(log, "s") is StreamState.FAILED


async def test_a_renewal_that_finds_the_lease_lost_stops_the_producer() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log, lease_ttl=TTL, poll_interval=10)
        stopped: list[object] = []

        async def producer() -> AsyncIterator[LogEntry]:
            try:
                yield LogEntry("a")
                await asyncio.Event().wait()
            except asyncio.CancelledError as exc:
                stopped.append(exc.args)
                raise
            yield LogEntry("never")

        await runner.start("s", producer(), background=True, closing=closing)
        await eventually(lambda: asyncio.sleep(0, result=bool(runner.running())))
        assert await log.release_lease("s", runner.owner)  # taken away behind its back
        await eventually(lambda: _is(log, "s", StreamState.CANCELLED))
        assert stopped == [(PRODUCER_LOST,)]
        _, events = await log.read("s")
        assert [e.data for e in events] == ["a", '{"lost":"producer_lost"}']
        await runner.aclose()


async def _is(log: MemoryEventLog, stream: str, state: StreamState) -> bool:
    return await _state(log, stream) is state


async def test_a_renewed_producer_outlives_many_ttls() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log, lease_ttl=0.1, poll_interval=0.02)
        done = asyncio.Event()

        async def slow() -> AsyncIterator[LogEntry]:
            yield LogEntry("a")
            await asyncio.sleep(0.5)  # five ttls without an append: renewals keep it
            yield LogEntry("b")
            done.set()

        await runner.start("s", slow(), background=True, closing=closing)
        got = await drain(log.follow("s"))
        assert [e.data for e in got if isinstance(e, LogEvent)] == ["a", "b"]
        assert done.is_set() and await _state(log, "s") is StreamState.CLOSED
        await runner.aclose()


async def test_a_stream_with_a_live_producer_elsewhere_cannot_get_a_second_one() -> None:
    async with MemoryEventLog() as log:
        one = ProducerRunner(log, lease_ttl=30)
        other = ProducerRunner(log, lease_ttl=30)
        await one.start("s", forever(), background=True)
        with pytest.raises(Exception, match="another instance"):
            await other.start("s", two(), background=True)
        await one.aclose()
        await other.aclose()
        assert await _state(log, "s") is StreamState.CANCELLED
