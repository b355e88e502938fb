"""ChannelHub on the memory log: publish, subscribe from the tail, history, resume."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from mianzhang.channels import ChannelHub
from mianzhang.log import LogEvent, MemoryEventLog, Reset


@pytest.fixture
async def hub() -> AsyncIterator[ChannelHub]:
    log = MemoryEventLog()
    yield ChannelHub(log, max_events=5, retention={"big/*": 100})
    await log.aclose()


async def take(it: AsyncIterator[LogEvent | Reset], n: int) -> list[LogEvent | Reset]:
    out: list[LogEvent | Reset] = []
    async with asyncio.timeout(5):
        while len(out) < n:
            out.append(await anext(it))
    return out


async def test_new_subscriber_starts_at_the_tail(hub: ChannelHub) -> None:
    await hub.publish("news", "old")
    sub = hub.subscribe("news")
    nxt = asyncio.ensure_future(anext(sub))
    async with asyncio.timeout(5):
        while await hub.subscribers("news") < 1:
            await asyncio.sleep(0.005)
    await hub.publish("news", {"headline": "fresh"}, event="breaking")
    async with asyncio.timeout(5):
        got = await nxt
    assert isinstance(got, LogEvent)
    assert json.loads(got.data) == {"headline": "fresh"} and got.event == "breaking"
    await sub.aclose()  # type: ignore[attr-defined]
    assert await hub.subscribers("news") == 0


async def test_history_and_resume(hub: ChannelHub) -> None:
    ids = [(await hub.publish("room", f"m{i}")).id for i in range(4)]
    sub = hub.subscribe("room", history=2)
    got = await take(sub, 2)
    assert [e.data for e in got if isinstance(e, LogEvent)] == ["m2", "m3"]
    await sub.aclose()  # type: ignore[attr-defined]
    sub = hub.subscribe("room", after=ids[0])
    got = await take(sub, 3)
    assert [e.data for e in got if isinstance(e, LogEvent)] == ["m1", "m2", "m3"]
    await sub.aclose()  # type: ignore[attr-defined]


async def test_history_larger_than_retention_is_not_a_reset(hub: ChannelHub) -> None:
    for i in range(8):
        await hub.publish("room", f"m{i}")
    sub = hub.subscribe("room", history=50)
    got = await take(sub, 5)
    assert all(isinstance(e, LogEvent) for e in got)
    assert [e.data for e in got if isinstance(e, LogEvent)] == ["m3", "m4", "m5", "m6", "m7"]
    await sub.aclose()  # type: ignore[attr-defined]


async def test_resume_from_trimmed_history_is_reset(hub: ChannelHub) -> None:
    first = (await hub.publish("room", "m0")).id
    for i in range(1, 8):
        await hub.publish("room", f"m{i}")
    sub = hub.subscribe("room", after=first)
    got = await take(sub, 2)
    assert isinstance(got[0], Reset) and got[0].reason == "retention"
    assert isinstance(got[1], LogEvent) and got[1].data == "m3"
    await sub.aclose()  # type: ignore[attr-defined]


async def test_retention_override_by_pattern(hub: ChannelHub) -> None:
    for i in range(20):
        await hub.publish("big/one", str(i))
    info = await hub.info("big/one")
    assert info is not None and info.length == 20 and info.max_events == 100
    assert hub.max_events_for("small") == 5


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 201, "é", "a\nb"])
async def test_bad_channel_names_are_refused(hub: ChannelHub, name: str) -> None:
    with pytest.raises(ValueError, match="channel name"):
        await hub.publish(name, "x")


@pytest.mark.parametrize("event", ["", "a b", "x\ny", "-start"])
async def test_bad_event_types_are_refused(hub: ChannelHub, event: str) -> None:
    with pytest.raises(ValueError, match="event type"):
        await hub.publish("ok", "x", event=event)


async def test_idempotent_publish_is_stored_once_and_flagged(hub: ChannelHub) -> None:
    first = await hub.publish("orders", {"n": 1}, idempotency_key="order-1")
    again = await hub.publish("orders", {"n": 1}, idempotency_key="order-1")
    other = await hub.publish("orders", {"n": 2}, idempotency_key="order-2")
    assert not first.duplicate and again.duplicate and not other.duplicate
    assert again.id == first.id and other.id != first.id
    info = await hub.info("orders")
    assert info is not None and info.length == 2


async def test_same_key_on_another_channel_is_a_new_event(hub: ChannelHub) -> None:
    a = await hub.publish("one", "x", idempotency_key="k")
    b = await hub.publish("two", "x", idempotency_key="k")
    assert not a.duplicate and not b.duplicate


async def test_a_repeat_after_its_event_was_trimmed_is_still_a_duplicate(hub: ChannelHub) -> None:
    first = await hub.publish("room", "kept once", idempotency_key="k")
    for i in range(10):  # max_events=5: the first event is trimmed
        await hub.publish("room", f"m{i}")
    again = await hub.publish("room", "kept once", idempotency_key="k")
    assert again.duplicate and again.id == first.id


@pytest.mark.parametrize("key", ["", "a b", "x" * 201, "é"])
async def test_bad_idempotency_keys_are_refused(hub: ChannelHub, key: str) -> None:
    with pytest.raises(ValueError, match="idempotency key"):
        await hub.publish("ok", "x", idempotency_key=key)


async def test_start_after_positions(hub: ChannelHub) -> None:
    assert await hub.start_after("empty", 3) is None  # nothing yet: follow from the start
    ids = [(await hub.publish("room", f"m{i}")).id for i in range(4)]
    assert await hub.start_after("room", 0) == ids[-1]  # the live tail
    assert await hub.start_after("room", 2) == ids[1]  # the last two first
    assert await hub.start_after("room", 100) is None  # everything retained
    with pytest.raises(ValueError, match="history"):
        await hub.start_after("room", -1)


async def test_subscribe_recreates_a_channel_whose_history_was_lost() -> None:
    log = MemoryEventLog()
    hub = ChannelHub(log, max_events=5)
    try:
        await hub.publish("gone", "before")  # the hub now remembers the channel as created
        # a new log (as after a Redis restart) behind the same hub: the channel is missing
        hub.log = fresh = MemoryEventLog()
        sub = hub.subscribe("gone")
        nxt = asyncio.ensure_future(anext(sub))
        async with asyncio.timeout(5):
            while await hub.subscribers("gone") < 1:
                await asyncio.sleep(0.005)
        await hub.publish("gone", "after")
        async with asyncio.timeout(5):
            got = await nxt
        assert isinstance(got, LogEvent) and got.data == "after"
        await sub.aclose()  # type: ignore[attr-defined]
        await fresh.aclose()
    finally:
        await log.aclose()


async def test_subscriber_count_follows_open_subscriptions(hub: ChannelHub) -> None:
    subs = [hub.subscribe("count") for _ in range(3)]
    pending = [asyncio.ensure_future(anext(s)) for s in subs]
    async with asyncio.timeout(5):
        while await hub.subscribers("count") < 3:
            await asyncio.sleep(0.005)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for s in subs:
        await s.aclose()  # type: ignore[attr-defined]
    assert await hub.subscribers("count") == 0
