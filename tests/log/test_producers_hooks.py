"""ProducerRunner hooks: ``closing(reason)`` is appended exactly once when (and only when) the
producer is cancelled, while the stream is open (and asked once, at start, for the entries of
a lost producer: the lease's); ``on_end()`` is awaited exactly once after the stream has
ended, whatever happened, also when a shutdown cancels the runner meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from mianzhang.log import LogEntry, MemoryEventLog, ProducerRunner, StreamState
from mianzhang.log._protocol import PRODUCER_LOST
from tests._support.wait import eventually
from tests.log._util import SlowCloseLog


class Hooks:
    """Records every call of the hooks and the stream's state at ``on_end``."""

    def __init__(self, log: MemoryEventLog, stream: str = "s") -> None:
        self.log = log
        self.stream = stream
        self.reasons: list[str] = []  # the cancellations' reasons
        self.lost_asked = 0  # closing(PRODUCER_LOST): the lease's entries, asked at start
        self.ends: list[StreamState | None] = []
        self.ended = asyncio.Event()

    def closing(self, reason: str) -> Sequence[LogEntry]:
        if reason == PRODUCER_LOST:
            self.lost_asked += 1
        else:
            self.reasons.append(reason)
        return [LogEntry(f"tail:{reason}", event="closing"), LogEntry("last")]

    async def on_end(self) -> None:
        info = await self.log.info(self.stream)
        self.ends.append(info.state if info is not None else None)
        self.ended.set()


async def waiting(first: int = 1) -> AsyncIterator[LogEntry]:
    for i in range(first):
        yield LogEntry(f"e{i}")
    await asyncio.Event().wait()
    yield LogEntry("never")


async def data(log: MemoryEventLog, stream: str = "s") -> list[str]:
    _, events = await log.read(stream)
    return [e.data for e in events]


async def start(runner: ProducerRunner, hooks: Hooks, producer: AsyncIterator[LogEntry]) -> None:
    await runner.start(
        hooks.stream, producer, background=True, closing=hooks.closing, on_end=hooks.on_end
    )


async def length_at_least(log: MemoryEventLog, n: int, stream: str = "s") -> None:
    async def check() -> bool:
        info = await log.info(stream)
        return info is not None and info.length >= n

    await eventually(check)


async def test_a_producer_that_ends_gets_on_end_and_no_closing() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log)
        hooks = Hooks(log)

        async def two() -> AsyncIterator[LogEntry]:
            yield LogEntry("a")
            yield LogEntry("b")

        await start(runner, hooks, two())
        async with asyncio.timeout(10):
            await hooks.ended.wait()
        await runner.aclose()
        assert hooks.ends == [StreamState.CLOSED]  # awaited after the stream was closed
        assert hooks.reasons == [] and await data(log) == ["a", "b"]
        assert hooks.lost_asked == 1  # once, at start: the entries stored with the lease


async def test_a_failing_producer_gets_on_end_and_no_closing() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log)
        hooks = Hooks(log)

        async def failing() -> AsyncIterator[LogEntry]:
            yield LogEntry("a")
            raise RuntimeError("boom")

        await start(runner, hooks, failing())
        async with asyncio.timeout(10):
            await hooks.ended.wait()
        await runner.aclose()
        assert hooks.ends == [StreamState.CLOSED] and hooks.reasons == []
        _, events = await log.read("s")
        assert [e.event for e in events] == [None, "error"]


@pytest.mark.parametrize("where", ["owner", "other instance"])
async def test_a_stop_appends_the_closing_entries_once_then_ends(where: str) -> None:
    async with MemoryEventLog() as log:
        owner = ProducerRunner(log, poll_interval=0.01)
        other = ProducerRunner(log, poll_interval=0.01)
        hooks = Hooks(log)
        try:
            await start(owner, hooks, waiting())
            await length_at_least(log, 1)
            stopper = owner if where == "owner" else other
            async with asyncio.timeout(10):
                assert await stopper.cancel("s") is True
                await hooks.ended.wait()
        finally:
            await owner.aclose()
            await other.aclose()
        assert hooks.reasons == ["stopped"]
        assert await data(log) == ["e0", "tail:stopped", "last"]
        assert hooks.ends == [StreamState.CANCELLED]


async def test_abandonment_and_shutdown_give_their_reason_to_closing() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log, grace_period=0.05, poll_interval=0.01)
        abandoned, kept = Hooks(log, "a"), Hooks(log, "b")
        await runner.start("a", waiting(), closing=abandoned.closing, on_end=abandoned.on_end)
        await start(runner, kept, waiting())
        async with asyncio.timeout(10):
            await abandoned.ended.wait()
        await length_at_least(log, 1, "b")
        await runner.aclose()
        assert abandoned.reasons == ["abandoned"] and kept.reasons == ["shutdown"]
        assert await data(log, "a") == ["e0", "tail:abandoned", "last"]
        assert await data(log, "b") == ["e0", "tail:shutdown", "last"]
        assert abandoned.ends == kept.ends == [StreamState.CANCELLED]


async def test_a_shutdown_during_a_stop_keeps_one_tail_and_one_on_end() -> None:
    async with SlowCloseLog() as log:
        runner = ProducerRunner(log, poll_interval=0.01)
        hooks = Hooks(log)
        await start(runner, hooks, waiting())
        await length_at_least(log, 1)
        stop = asyncio.create_task(runner.cancel("s"))
        try:
            async with asyncio.timeout(10):
                await log.closing.wait()
            shutdown = asyncio.create_task(runner.aclose())  # cancels the producer task again
            done, _ = await asyncio.wait({shutdown}, timeout=0.05)
            assert not done and not hooks.ended.is_set()  # it waits for the stream's end
            log.hold.set()
            async with asyncio.timeout(10):
                await shutdown
                assert await stop is True
        finally:
            stop.cancel()
        assert hooks.reasons == ["stopped"]
        assert await data(log) == ["e0", "tail:stopped", "last"]
        assert hooks.ends == [StreamState.CANCELLED]


async def test_on_end_finishes_even_when_a_shutdown_arrives_while_it_runs() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log, poll_interval=0.01)
        gate, entered, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def on_end() -> None:
            entered.set()
            await gate.wait()  # charging a budget in a slow backend
            finished.set()

        await runner.start("s", waiting(), background=True, on_end=on_end)
        await length_at_least(log, 1)
        stop = asyncio.create_task(runner.cancel("s"))
        async with asyncio.timeout(10):
            await entered.wait()
        shutdown = asyncio.create_task(runner.aclose())
        done, _ = await asyncio.wait({shutdown}, timeout=0.05)
        assert not done  # the shutdown waits for on_end, it does not cancel it
        gate.set()
        async with asyncio.timeout(10):
            await shutdown
            await stop
        assert finished.is_set()


async def test_a_stream_closed_elsewhere_still_gets_on_end_but_no_closing() -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log)
        hooks = Hooks(log)
        release = asyncio.Event()

        async def late() -> AsyncIterator[LogEntry]:
            await release.wait()
            yield LogEntry("too late")

        await start(runner, hooks, late())
        await log.close("s", state=StreamState.CANCELLED)  # ended from elsewhere
        release.set()
        async with asyncio.timeout(10):
            await hooks.ended.wait()
        await runner.aclose()
        assert hooks.reasons == [] and hooks.ends == [StreamState.CANCELLED]
        assert await data(log) == []


async def test_failing_hooks_are_logged_and_the_stream_still_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log, poll_interval=0.01)

        def closing(reason: str) -> Sequence[LogEntry]:
            raise RuntimeError("closing broke")

        async def on_end() -> None:
            raise RuntimeError("on_end broke")

        await runner.start("s", waiting(), background=True, closing=closing, on_end=on_end)
        await length_at_least(log, 1)
        async with asyncio.timeout(10):
            assert await runner.cancel("s") is True
        await runner.aclose()
        info = await log.info("s")
        assert info is not None and info.state is StreamState.CANCELLED
        messages = [r.getMessage() for r in caplog.records]
        assert any("closing hook" in m for m in messages)
        assert any("on_end hook" in m for m in messages)
