"""_heartbeats.py: one timer per loop for every stream's heartbeat. A stream is called back
once, never before its time, in the bucket just after it; a removed stream is never called
and not referenced; the timer is armed only while a stream waits."""

from __future__ import annotations

import asyncio
import math

from mianzhang._responses._heartbeats import GRANULARITY, Heartbeats, loop_heartbeats


class Beat:
    def __init__(self) -> None:
        self.heartbeat_tick = 0
        self.calls: list[tuple[float, float]] = []  # (now given, loop time)
        self.called = asyncio.Event()

    def heartbeat_due(self, now: float) -> None:
        self.calls.append((now, asyncio.get_running_loop().time()))
        self.called.set()


async def test_each_stream_is_called_once_never_before_its_time() -> None:
    beats = Heartbeats()
    loop = asyncio.get_running_loop()
    streams = [Beat() for _ in range(50)]
    whens = [loop.time() + 0.01 * (i % 7) for i in range(50)]
    for stream, when in zip(streams, whens, strict=True):
        beats.add(stream, when)
        assert 0 <= stream.heartbeat_tick * GRANULARITY - when < GRANULARITY  # its bucket
    await asyncio.wait_for(asyncio.gather(*(s.called.wait() for s in streams)), 10)
    for stream, when in zip(streams, whens, strict=True):
        assert len(stream.calls) == 1
        given, at = stream.calls[0]
        assert given >= when and at >= when - 1e-3
    assert beats._buckets == {} and beats._handle is None  # nothing waits: no timer


async def test_a_removed_stream_is_never_called_nor_held() -> None:
    beats = Heartbeats()
    loop = asyncio.get_running_loop()
    kept, removed = Beat(), Beat()
    beats.add(removed, loop.time())
    beats.add(kept, loop.time() + GRANULARITY)
    beats.remove(removed)
    beats.remove(removed)  # twice: nothing
    assert all(removed not in bucket for bucket in beats._buckets.values())
    await asyncio.wait_for(kept.called.wait(), 10)
    assert removed.calls == []


async def test_a_stream_added_again_from_its_callback_waits_for_its_new_time() -> None:
    beats = Heartbeats()
    loop = asyncio.get_running_loop()
    stream = Beat()
    again = loop.time() + 2 * GRANULARITY

    def due(now: float) -> None:
        Beat.heartbeat_due(stream, now)
        if len(stream.calls) == 1:
            beats.add(stream, again)

    stream.heartbeat_due = due  # type: ignore[method-assign]
    beats.add(stream, loop.time())
    while len(stream.calls) < 2:
        stream.called.clear()
        await asyncio.wait_for(stream.called.wait(), 10)
    assert stream.calls[1][0] >= again


async def test_one_heartbeats_per_loop() -> None:
    assert loop_heartbeats() is loop_heartbeats()
    assert math.isinf(Heartbeats()._next)
