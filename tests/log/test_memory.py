"""MemoryEventLog specifics (the shared behaviour is in ``contract/``)."""

from __future__ import annotations

import asyncio

import pytest

from mianzhang._errors import LogError, StreamNotFound
from mianzhang.log import EventLog, LogEvent, MemoryEventLog, Reset, parse_id

from ._util import drain, eventually, seq_of, take


def epoch_of(event_id: str) -> str:
    parsed = parse_id(event_id)
    assert parsed is not None
    return parsed[0]


async def test_is_an_event_log() -> None:
    async with MemoryEventLog() as log:
        assert isinstance(log, EventLog)


async def test_a_new_instance_is_a_new_epoch() -> None:
    async with MemoryEventLog() as before, MemoryEventLog() as after:
        old = await before.append("s", "x")
        new = await after.append("s", "x")
        assert epoch_of(old) != epoch_of(new)
        reset, events = await after.read("s", old)
        assert reset == Reset("epoch", old, new, epoch_of(new))
        assert [e.id for e in events] == [new]


async def test_holds_at_most_max_events_per_stream_whatever_the_readers() -> None:
    async with MemoryEventLog(max_events=50) as log:
        for name in ("a", "b"):
            await log.append(name, "0")
        stalled = [log.follow(name) for name in ("a", "b") for _ in range(100)]
        for iterator in stalled:
            await take(iterator, 1)  # 200 readers that never read again
        for i in range(1000):
            await log.append("a" if i % 2 else "b", str(i))
            stats = log.statistics()
            assert stats.events <= 2 * 50
        assert log.statistics().followers == 200
        for iterator in stalled:
            await iterator.aclose()
        assert log.statistics().followers == 0


async def test_unbounded_retention_when_asked() -> None:
    async with MemoryEventLog(max_events=None, ttl_after_close=None) as log:
        for i in range(2000):
            await log.append("s", str(i))
        reset, events = await log.read("s", limit=5000)
        assert reset is None
        assert len(events) == 2000
        info = await log.info("s")
        assert info is not None
        assert (info.max_events, info.ttl_after_close) == (None, None)


async def test_a_follower_lagging_behind_a_deleted_stream_is_told() -> None:
    async with MemoryEventLog() as log:
        await log.create("s", ttl_after_close=0.05)
        for i in range(3):
            await log.append("s", str(i))
        iterator = log.follow("s")
        await take(iterator, 1)
        await log.close("s")

        async def deleted() -> bool:
            return await log.info("s") is None

        await eventually(deleted)
        with pytest.raises(StreamNotFound):
            await drain(iterator)


async def test_expiry_is_also_applied_on_access() -> None:
    """Even if the timer could not run (loop busy), an expired stream is not served."""
    async with MemoryEventLog() as log:
        await log.create("s", ttl_after_close=0.0)
        await log.append("s", "x")
        await log.close("s")
        assert await log.info("s") is None  # no await point ran the timer yet


async def test_aclose_drops_streams_and_timers_and_ends_followers() -> None:
    log = MemoryEventLog()
    await log.create("s", ttl_after_close=3600)
    await log.append("s", "x")
    await log.close("s")
    await log.append("open", "x")
    follower = asyncio.ensure_future(drain(log.follow("open")))
    await eventually(lambda: _readers(log, "open", 1))
    await log.aclose()
    assert log.statistics().streams == 0
    with pytest.raises(LogError):
        await follower
    await log.aclose()  # idempotent
    with pytest.raises(LogError):
        await log.info("s")


async def _readers(log: MemoryEventLog, stream: str, n: int) -> bool:
    return await log.readers(stream) == n


async def test_follow_yields_the_stored_event_objects() -> None:
    """No per-follower copies: every follower gets the same event object."""
    async with MemoryEventLog() as log:
        await log.append("s", "x")
        await log.close("s")
        first = await drain(log.follow("s"))
        second = await drain(log.follow("s"))
        assert isinstance(first[0], LogEvent)
        assert first[0] is second[0]


async def test_invalid_arguments() -> None:
    async with MemoryEventLog() as log:
        with pytest.raises(ValueError):
            await log.create("")
        with pytest.raises(ValueError):
            await log.create("s", max_events=0)
        with pytest.raises(ValueError):
            await log.read("s", limit=-1)
    with pytest.raises(ValueError):
        MemoryEventLog(ttl_after_close=-1)


async def test_a_reader_lapped_again_while_holding_its_reset_gets_another() -> None:
    async with MemoryEventLog() as log:
        await log.create("s", max_events=3)
        await log.append("s", "1")
        iterator = log.follow("s")
        await take(iterator, 1)
        for i in range(2, 11):
            await log.append("s", str(i))  # retained: 8, 9, 10
        [reset] = await take(iterator, 1)
        assert isinstance(reset, Reset)
        assert reset.first_available is not None
        assert reset.first_available.endswith("-8")
        for i in range(11, 21):
            await log.append("s", str(i))  # while the reader holds the reset: 18, 19, 20
        await log.close("s")
        rest = await drain(iterator)
        assert isinstance(rest[0], Reset)
        assert rest[0].requested is not None
        assert rest[0].requested.endswith("-7")
        assert [e.data for e in rest[1:] if isinstance(e, LogEvent)] == ["18", "19", "20"]


async def test_idempotency_keys_are_bounded_per_stream() -> None:
    async with MemoryEventLog(idempotency_keys=100) as log:
        await log.append("s", "x", idempotency_key="k0")
        for i in range(1, 300):
            last = await log.append("s", "x", idempotency_key=f"k{i}")
        assert len(log._streams["s"].keys) <= 100
        assert await log.append("s", "x", idempotency_key="k299") == last  # remembered
        assert seq_of(await log.append("s", "x", idempotency_key="k0")) == 301  # forgotten
