"""LightEvent behaves as asyncio.Event for what uvicorn does with it: wait until set, wake
every waiter, clear, a cancelled waiter forgotten; lighten keeps the state it replaces."""

from __future__ import annotations

import asyncio

from mianzhang.server._light_event import LightEvent, lighten


async def test_wait_returns_at_once_when_set_and_waits_when_cleared() -> None:
    event = LightEvent()
    event.set()
    assert event.is_set() and await event.wait() is True
    event.clear()
    waiter = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    assert not waiter.done()  # cleared: it waits
    event.set()
    assert await waiter is True


async def test_set_wakes_every_waiter_and_a_cancelled_waiter_is_forgotten() -> None:
    event = LightEvent()
    waiters = [asyncio.create_task(event.wait()) for _ in range(3)]
    gone = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert event._waiters is not None and len(event._waiters) == 3
    event.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert event._waiters is None


def test_lighten_keeps_the_state_of_the_event_it_replaces() -> None:
    unset, already = asyncio.Event(), asyncio.Event()
    already.set()
    assert not lighten(unset).is_set()
    assert lighten(already).is_set()
    light = LightEvent()
    assert lighten(light) is light
