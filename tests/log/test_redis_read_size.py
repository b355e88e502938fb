"""How many events a Redis follower asks for per read (``RedisEventLog.follow``).

The first read of ``follow`` (before the watch is attached) asks for ``FIRST_READ`` events (at
most ``read_batch``). A follower that is behind then reads its own range in reads sized by the
events it saw last (read from Redis, or the first one taken from the shared cache): about
``READ_BYTES`` of data, at least 1 and at most ``read_batch`` events; ``FIRST_READ`` events
while it has seen none.
Every test records the ``count`` of each ``_snapshot`` call of one instance, in call order.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import pytest

from mianzhang.log import LogEvent, RedisEventLog
from mianzhang.log.redis._follower import FIRST_READ, READ_BYTES

from ._util import drain, eventually, take

pytestmark = pytest.mark.redis

READ_BATCH = 100  # RedisEventLog's default read_batch


@dataclass(frozen=True)
class Read:
    """One ``_snapshot`` call: the count asked for, the events and data characters returned."""

    count: int
    events: int
    chars: int


def new(logs: list[RedisEventLog], url: str, **options: Any) -> RedisEventLog:
    log = RedisEventLog(url, **options)
    logs.append(log)
    return log


def record_reads(monkeypatch: pytest.MonkeyPatch, log: RedisEventLog) -> list[Read]:
    """Wrap ``log._snapshot`` (on this instance only); returns the list of reads, in order.

    A read is recorded when it returns, so a recorded read can no longer see later appends."""
    original = log._snapshot
    reads: list[Read] = []

    async def recording(keys: Any, epoch: str, after: int, count: int) -> Any:
        snap = await original(keys, epoch, after, count)
        events = [] if snap is None else snap.events
        reads.append(Read(count, len(events), sum(len(e.data) for e in events)))
        return snap

    monkeypatch.setattr(log, "_snapshot", recording)
    return reads


async def backlog(log: RedisEventLog, stream: str, n: int, size: int) -> list[str]:
    """Append ``n`` events of ``size`` characters each (distinct data); returns their data."""
    data = [f"{i:06d}".ljust(size, "x") for i in range(n)]
    for item in data:
        await log.append(stream, item)
    return data


def in_order(items: list[Any], data: list[str], first_seq: int = 1) -> None:
    """``items`` are exactly the events ``data``, each once, with contiguous seqs."""
    assert all(isinstance(item, LogEvent) for item in items), items
    assert [item.data for item in items] == data
    assert [item.seq for item in items] == list(range(first_seq, first_seq + len(data)))


@pytest.mark.parametrize("size", [1000, 2000, 3000])
async def test_a_lagging_follower_of_large_events_reads_about_read_bytes_at_a_time(
    logs: list[RedisEventLog], redis_url: str, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    log = new(logs, redis_url)
    data = await backlog(log, "big", 300, size)
    await log.close("big")
    reads = record_reads(monkeypatch, log)

    items = await drain(log.follow("big"))

    in_order(items, data)
    per_read = READ_BYTES // size  # 32, 16, 10: each catching-up read holds about READ_BYTES
    # the first read (before the watch is attached) asks for FIRST_READ events
    assert reads[0] == Read(FIRST_READ, FIRST_READ, FIRST_READ * size)
    # then every catching-up read is sized by the events just read, never read_batch
    rest = 300 - FIRST_READ
    assert [read.count for read in reads[1:]] == [per_read] * math.ceil(rest / per_read)
    assert all(read.chars <= READ_BYTES for read in reads[1:])
    assert sum(read.events for read in reads) == 300


async def test_a_lagging_follower_of_small_events_reads_read_batch_at_a_time(
    logs: list[RedisEventLog], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = new(logs, redis_url)
    data = await backlog(log, "small", 1000, 50)
    await log.close("small")
    reads = record_reads(monkeypatch, log)

    items = await drain(log.follow("small"))

    in_order(items, data)
    # FIRST_READ, then READ_BYTES // 50 = 655 events capped at read_batch
    assert READ_BYTES // 50 > READ_BATCH
    rest = 1000 - FIRST_READ
    assert [read.count for read in reads] == [FIRST_READ] + [READ_BATCH] * math.ceil(rest / 100)
    assert sum(read.events for read in reads) == 1000


async def test_a_custom_read_batch_caps_every_read_even_for_tiny_events(
    logs: list[RedisEventLog], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = new(logs, redis_url, read_batch=8)
    data = await backlog(log, "tiny", 100, 5)
    await log.close("tiny")
    reads = record_reads(monkeypatch, log)

    items = await drain(log.follow("tiny"))

    in_order(items, data)
    assert [read.count for read in reads] == [8] * math.ceil(100 / 8)


async def test_a_lagging_follower_of_one_huge_event_per_read_asks_for_one(
    logs: list[RedisEventLog], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = new(logs, redis_url, read_batch=4)
    data = await backlog(log, "huge", 10, READ_BYTES * 2)
    await log.close("huge")
    reads = record_reads(monkeypatch, log)

    items = await drain(log.follow("huge"))

    in_order(items, data)
    # READ_BYTES // size is 0: the count is clamped to 1, never 0 (which would read nothing)
    assert [read.count for read in reads] == [4] + [1] * 6


async def _fell_out_of_the_cache(log: RedisEventLog, last: int) -> bool:
    """The watcher of this instance's only stream has seen seq ``last`` (so its cache, of
    ``cache_size`` events, no longer holds the events a stalled follower needs next)."""
    watches = list(log._watcher._watches.values())
    return len(watches) == 1 and watches[0].last >= last


@pytest.mark.parametrize("read_batch", [100, 8])
async def test_a_caught_up_follower_that_falls_behind_sizes_its_reads_from_cached_events(
    logs: list[RedisEventLog],
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    read_batch: int,
) -> None:
    size = 3000  # READ_BYTES // size = 10: distinct from FIRST_READ and from read_batch
    log = new(logs, redis_url, cache_size=4, read_batch=read_batch)
    start = await log.append("s", "start")
    reads = record_reads(monkeypatch, log)
    follower = log.follow("s", after=start)  # caught up: its first read holds no events
    pending = asyncio.ensure_future(anext(follower))

    async def first_read_done() -> bool:
        return len(reads) == 1

    try:
        await eventually(first_read_done)
        data = await backlog(log, "s", 300, size)
        # stall the follower until the shared read is past its position: it must read Redis
        await eventually(lambda: _fell_out_of_the_cache(log, 301))
        async with asyncio.timeout(20):
            items = [await pending, *await take(follower, 299)]
    finally:
        pending.cancel()
        await asyncio.wait([pending])  # never raises: the generator is not running after this
        await follower.aclose()

    in_order(items, data, first_seq=2)
    assert reads[0] == Read(min(read_batch, FIRST_READ), 0, 0)
    catching_up = [read.count for read in reads[1:]]
    # the first event came from the shared cache: its size sizes every catching-up read
    assert catching_up, "the follower never read Redis"
    assert set(catching_up) == {min(read_batch, READ_BYTES // size)}, catching_up
