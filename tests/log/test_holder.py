"""LeaseHolder (a request-bound producer's lease) on the memory log: a holder that dies
inside its block (its renewals stop and the block never ends) loses the lease, and readers get
the stored entries and the end (FAILED), exactly once; a block that ends normally leaves no
``producer_lost``; a lease lost while the block runs stops the block with ``LeaseLost``."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from mianzhang import LeaseLost
from mianzhang.log import LeaseHolder, LogEntry, LogEvent, MemoryEventLog, StreamState
from mianzhang.log._producer_end import lost_entries
from mianzhang.log._protocol import PRODUCER_LOST
from tests._support.wait import eventually

from ._util import drain

TTL = 0.3


async def _state(log: MemoryEventLog, stream: str) -> StreamState | None:
    info = await log.info(stream)
    return None if info is None else info.state


async def test_a_holder_that_dies_in_its_block_ends_the_stream_for_its_readers() -> None:
    async with MemoryEventLog() as log:
        await log.create("s")
        holder = LeaseHolder(log, "s", ttl=TTL, entries=lost_entries("s", None))
        await holder.__aenter__()  # never left: the block's task is gone
        assert holder.held and holder._renewer is not None
        await log.append("s", "a")
        reader = asyncio.ensure_future(drain(log.follow("s")))
        holder._renewer.cancel()  # its renewals stop, as in a killed process
        got = await reader  # ends: the lease expired
        assert [(e.data, e.event) for e in got if isinstance(e, LogEvent)][:1] == [("a", None)]
        errors = [e for e in got if isinstance(e, LogEvent) and e.event == "error"]
        assert len(errors) == 1 and got[-1] is errors[0]
        assert orjson.loads(errors[0].data)["type"] == PRODUCER_LOST
        assert await _state(log, "s") is StreamState.FAILED
        # exactly once: nothing is left to apply, by a sweep or a check
        assert await log.sweep_leases() == 0
        assert await log.expire_lease("s") is None
        _, events = await log.read("s")
        assert [e.event for e in events] == [None, "error"]


async def test_a_block_that_ends_its_stream_leaves_no_producer_lost() -> None:
    async with MemoryEventLog() as log:
        await log.create("s")
        reader = asyncio.ensure_future(drain(log.follow("s")))
        async with LeaseHolder(log, "s", ttl=TTL, entries=lost_entries("s", None)) as holder:
            assert holder.held
            await log.append("s", "a")
            await asyncio.sleep(2 * TTL)  # the work outlasts the ttl: renewals keep the lease
            await log.append("s", "b")
            await log.close("s")
        got = await reader
        assert [e.data for e in got if isinstance(e, LogEvent)] == ["a", "b"]
        assert await _state(log, "s") is StreamState.CLOSED
        assert holder._renewer is not None and holder._renewer.done()
        assert await log.sweep_leases() == 0


async def test_a_block_that_leaves_its_stream_open_releases_the_lease_unapplied() -> None:
    """A paused resumable upload: the stream stays open, with no lease to expire."""
    async with MemoryEventLog() as log:
        await log.create("s")
        paused = [LogEntry('{"state":"paused"}', "progress")]
        async with LeaseHolder(log, "s", ttl=TTL, entries=paused, final=False) as holder:
            await log.append("s", "a")
        assert holder.held and not holder.lost
        assert await log.expire_lease("s") is None  # no lease: nothing can expire
        assert await log.sweep_leases() == 0
        assert await _state(log, "s") is StreamState.OPEN
        _, events = await log.read("s")
        assert [e.data for e in events] == ["a"]


async def test_a_non_final_lease_of_a_dead_holder_keeps_the_stream_open() -> None:
    async with MemoryEventLog() as log:
        await log.create("s")
        paused = [LogEntry('{"state":"paused"}', "progress")]
        holder = LeaseHolder(log, "s", ttl=TTL, entries=paused, final=False)
        await holder.__aenter__()
        assert holder._renewer is not None
        holder._renewer.cancel()
        follower = log.follow("s")
        first = await anext(follower)  # the entries applied at the expiry
        await follower.aclose()
        assert isinstance(first, LogEvent) and first.event == "progress"
        assert await _state(log, "s") is StreamState.OPEN
        # the next producer takes the stream on
        async with LeaseHolder(log, "s", ttl=TTL, entries=paused, final=False) as second:
            assert second.held


async def holding(log: MemoryEventLog) -> tuple[LeaseHolder, asyncio.Future[None]]:
    """A task holding stream ``s``'s lease (its loss ends the stream) in a block that waits
    forever; returned once the block is entered."""
    entered = asyncio.Event()
    holder = LeaseHolder(log, "s", ttl=TTL, entries=lost_entries("s", None))

    async def block() -> None:
        async with holder:
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.ensure_future(block())
    async with asyncio.timeout(10):
        await entered.wait()
    return holder, task


async def test_a_lease_lost_while_the_block_runs_stops_it_with_lease_lost() -> None:
    async with MemoryEventLog() as log:
        await log.create("s")
        holder, task = await holding(log)
        assert await log.release_lease("s", holder.owner, apply=True)  # ended elsewhere
        with pytest.raises(LeaseLost):
            async with asyncio.timeout(10):
                await task
        assert holder.lost
        assert task.cancelling() == 0  # the holder's own cancellation was taken back
        assert await _state(log, "s") is StreamState.FAILED


async def test_a_stream_with_a_live_producer_is_produced_without_a_lease() -> None:
    async with MemoryEventLog() as log:
        await log.create("s")
        async with LeaseHolder(log, "s", ttl=30) as first:
            async with LeaseHolder(log, "s", ttl=30) as second:
                assert first.held and not second.held
                assert second._renewer is None
            # the second one leaving did not drop the first one's lease
            assert await log.renew_leases(first.owner, ["s"], ttl=30) == set()


async def test_a_holder_cancelled_from_outside_releases_its_lease() -> None:
    async with MemoryEventLog() as log:
        await log.create("s")
        holder, task = await holding(log)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task  # a cancellation the holder did not cause is not turned into LeaseLost
        assert await log.expire_lease("s") is None
        assert await _state(log, "s") is StreamState.OPEN
        await eventually(lambda: holder._renewer is not None and holder._renewer.done())
