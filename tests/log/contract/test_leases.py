"""The producer-lease contract (``mianzhang.log._protocol``, "Producer leases"), run on every
backend: memory, one Redis server, a Redis Cluster and a Sentinel-managed master.

A lease that is not renewed ends its stream exactly once, with the entries stored when it was
taken, in state FAILED; followers waiting on the stream receive them and end; nothing can
append afterwards. Every wait is bounded; the short ttls here only keep the tests fast.
"""

from __future__ import annotations

import asyncio

import pytest

from mianzhang._errors import StreamClosedError, StreamNotFound
from mianzhang.log import EventLog, LogEntry, LogEvent, StreamState

from .._util import drain, eventually, take
from .conftest import MakeLog

LOST = LogEntry('{"type":"producer_lost","message":"its producer was lost"}', "error")
TTL = 0.3


async def _state(log: EventLog, stream: str) -> StreamState | None:
    info = await log.info(stream)
    return None if info is None else info.state


async def _events(log: EventLog, stream: str) -> list[LogEvent]:
    reset, events = await log.read(stream)
    assert reset is None
    return events


async def test_an_expired_lease_ends_the_stream_for_its_followers(log: EventLog) -> None:
    first = await log.append("s", "a")
    assert await log.lease("s", "producer-1", ttl=TTL, entries=[LOST, LogEntry("bye")])
    followers = [asyncio.ensure_future(drain(log.follow("s"))) for _ in range(3)]
    # nobody renews: the producer is presumed dead once the ttl has passed
    for got in await asyncio.gather(*followers):
        assert [(e.data, e.event) for e in got if isinstance(e, LogEvent)] == [
            ("a", None),
            (LOST.data, "error"),
            ("bye", None),
        ]
        assert got[0].id == first
    assert await _state(log, "s") is StreamState.FAILED
    with pytest.raises(StreamClosedError):  # nothing resurrects it
        await log.append("s", "late")
    assert await log.renew_leases("producer-1", ["s"], ttl=TTL) == {"s"}
    assert not await log.lease("s", "producer-2", ttl=TTL)
    assert await log.expire_lease("s") is None


async def test_an_expired_lease_is_applied_exactly_once_across_instances(
    make_log: MakeLog,
) -> None:
    one = await make_log()
    # a second instance sharing the backend (the memory log is its own only instance)
    two = one if type(one).__name__ == "MemoryEventLog" else await make_log()
    for round_ in range(5):
        stream = f"s{round_}"
        await one.append(stream, "a")
        assert await one.lease(stream, "producer", ttl=0.05, entries=[LOST])
        calls = [log.expire_lease(stream) for log in (one, two) for _ in range(4)]
        calls += [one.sweep_leases(), two.sweep_leases()]
        await eventually(lambda s=stream: _is_failed(one, s), timeout=10)
        await asyncio.gather(*calls)
        events = await _events(two, stream)
        assert [e.event for e in events] == [None, "error"], f"round {round_}"
        assert [e.seq for e in events] == [1, 2]


async def _is_failed(log: EventLog, stream: str) -> bool:
    """Ask for the check-and-end until the stream is failed (whoever does it)."""
    await log.expire_lease(stream)
    return await _state(log, stream) is StreamState.FAILED


async def test_a_renewed_lease_keeps_the_stream_open(log: EventLog) -> None:
    await log.append("s", "a")
    assert await log.lease("s", "p", ttl=TTL, entries=[LOST])
    follower = log.follow("s")
    assert [e.data for e in await take(follower, 1) if isinstance(e, LogEvent)] == ["a"]
    for _ in range(8):  # over 2.5 ttl, renewed every ttl / 3
        await asyncio.sleep(TTL / 3)
        assert await log.renew_leases("p", ["s"], ttl=TTL) == set()
    left = await log.expire_lease("s")
    assert left is not None and 0 < left <= TTL
    assert await _state(log, "s") is StreamState.OPEN
    await log.append("s", "b")
    await log.close("s")
    rest = await drain(follower)
    assert [e.data for e in rest if isinstance(e, LogEvent)] == ["b"]  # no lease entries


async def test_closing_drops_the_lease(log: EventLog) -> None:
    await log.append("s", "a")
    assert await log.lease("s", "p", ttl=0.05, entries=[LOST])
    await log.close("s")
    assert await log.expire_lease("s") is None
    await log.sweep_leases()
    assert [e.data for e in await _events(log, "s")] == ["a"]
    assert await _state(log, "s") is StreamState.CLOSED
    assert await log.renew_leases("p", ["s"], ttl=TTL) == {"s"}


async def test_a_live_final_lease_is_not_taken_by_another_owner(log: EventLog) -> None:
    await log.create("s")
    assert await log.lease("s", "p", ttl=30, entries=[LOST])
    assert not await log.lease("s", "q", ttl=30)
    assert await log.lease("s", "p", ttl=30, entries=[LogEntry("new")])  # the owner renews
    assert await log.renew_leases("q", ["s"], ttl=30) == {"s"}
    assert await log.renew_leases("p", ["s", "missing"], ttl=30) == {"missing"}
    with pytest.raises(StreamNotFound):
        await log.lease("missing", "p", ttl=30)
    assert not await log.release_lease("s", "q")
    assert await log.release_lease("s", "p", apply=True)
    assert [(e.data, e.event) for e in await _events(log, "s")] == [("new", None)]
    assert await _state(log, "s") is StreamState.FAILED


async def test_a_released_lease_appends_nothing(log: EventLog) -> None:
    await log.create("s")
    assert await log.lease("s", "p", ttl=0.05, entries=[LOST])
    assert await log.release_lease("s", "p")
    assert await log.expire_lease("s") is None
    assert await _events(log, "s") == []
    assert await _state(log, "s") is StreamState.OPEN


async def test_a_resumable_lease_keeps_the_stream_open_and_is_taken_over(log: EventLog) -> None:
    requeued = LogEntry('{"state":"requeued"}', "state")
    await log.append("s", "attempt 1")
    assert await log.lease("s", "worker-a", ttl=30, entries=[requeued], final=False)
    # another worker resumes the producer: worker-a's entries first, exactly once
    assert await log.lease("s", "worker-b", ttl=TTL, entries=[requeued], final=False)
    assert await log.renew_leases("worker-a", ["s"], ttl=30) == {"s"}
    await log.append("s", "attempt 2")
    follower = asyncio.ensure_future(drain(log.follow("s")))
    # worker-b dies too: its entries are appended, the stream stays open
    await eventually(lambda: _has_events(log, "s", 4), timeout=10)
    assert [e.data for e in await _events(log, "s")] == [
        "attempt 1",
        requeued.data,
        "attempt 2",
        requeued.data,
    ]
    assert await _state(log, "s") is StreamState.OPEN
    assert await log.expire_lease("s") is None
    await log.close("s")
    assert len(await follower) == 4


async def _has_events(log: EventLog, stream: str, n: int) -> bool:
    await log.sweep_leases()
    return len(await _events(log, stream)) >= n


async def test_close_accepts_the_failed_state(log: EventLog) -> None:
    await log.append("s", "a")
    await log.close("s", state=StreamState.FAILED)
    assert await _state(log, "s") is StreamState.FAILED
    assert [e.data for e in await drain(log.follow("s"))] == ["a"]
