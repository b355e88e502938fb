"""log/redis/_first_reads.py: followers starting together share one first read (a subscribe
storm is one Redis read), and every one of them still gets every later event."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from mianzhang.log import LogEvent, RedisEventLog
from mianzhang.log.redis._first_reads import FirstReads
from mianzhang.log.redis._keys import StreamKeys
from mianzhang.log.redis._snapshot import Snapshot
from tests._support.wait import eventually


class Reads:
    """A fake ``read``: counts calls, each held until ``release`` (or failing with ``fail``)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int, int]] = []
        self.release = asyncio.Event()
        self.fail: BaseException | None = None

    async def __call__(self, keys: Any, epoch: str, after: int, count: int) -> Snapshot | None:
        self.calls.append((keys.log, epoch, after, count))
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return None


def keys(name: str) -> Any:
    return type("K", (), {"log": name})()


async def test_identical_reads_in_flight_are_one_read() -> None:
    reads = Reads()
    shared = FirstReads(reads)
    same = [asyncio.ensure_future(shared.read(keys("a"), "", 0, 10)) for _ in range(50)]
    other = asyncio.ensure_future(shared.read(keys("b"), "", 0, 10))
    await eventually(lambda: len(reads.calls) == 2)
    reads.release.set()
    assert await asyncio.gather(*same, other) == [None] * 51
    assert sorted(reads.calls) == [("a", "", 0, 10), ("b", "", 0, 10)]
    await shared.read(keys("a"), "", 0, 10)  # none in flight any more: a new read
    assert len(reads.calls) == 3


async def test_a_waiter_cancelled_leaves_the_read_to_the_others() -> None:
    reads = Reads()
    shared = FirstReads(reads)
    first = asyncio.ensure_future(shared.read(keys("a"), "", 0, 10))
    second = asyncio.ensure_future(shared.read(keys("a"), "", 0, 10))
    await eventually(lambda: len(reads.calls) == 1)
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    reads.release.set()
    assert await second is None
    assert len(reads.calls) == 1


async def test_a_failure_reaches_every_waiter() -> None:
    reads = Reads()
    reads.fail = TimeoutError("pool")
    shared = FirstReads(reads)
    waiters = [asyncio.ensure_future(shared.read(keys("a"), "", 0, 10)) for _ in range(3)]
    await eventually(lambda: len(reads.calls) == 1)
    reads.release.set()
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(outcome, TimeoutError) for outcome in outcomes)


async def test_aclose_cancels_the_reads_in_flight() -> None:
    reads = Reads()
    shared = FirstReads(reads)
    waiter = asyncio.ensure_future(shared.read(keys("a"), "", 0, 10))
    await eventually(lambda: len(reads.calls) == 1)
    await shared.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiter


@pytest.mark.redis
async def test_followers_subscribing_together_share_a_read_and_get_every_event(
    redis_url: str,
) -> None:
    log = RedisEventLog(redis_url)
    calls: list[StreamKeys] = []
    read = log._first_reads._read

    async def counting(keys: StreamKeys, epoch: str, after: int, count: int) -> Snapshot | None:
        calls.append(keys)
        return await read(keys, epoch, after, count)

    log._first_reads._read = counting
    got: list[list[str]] = [[] for _ in range(200)]

    async def follow(n: int) -> None:
        async for item in log.follow("storm"):
            if isinstance(item, LogEvent):
                got[n].append(item.data)
                if len(got[n]) == 3:
                    return

    try:
        await log.create("storm")
        await log.append("storm", "a")
        async with asyncio.timeout(20):
            followers = [asyncio.ensure_future(follow(n)) for n in range(200)]
            await eventually(lambda: all(got), timeout=10)  # each replayed "a"
            await log.append("storm", "b")
            await log.append("storm", "c")
            await asyncio.gather(*followers)
        assert all(events == ["a", "b", "c"] for events in got)
        assert len(calls) < 20, len(calls)  # 200 followers: a handful of first reads
    finally:
        await log.aclose()
