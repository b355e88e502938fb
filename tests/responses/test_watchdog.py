"""_watchdog.py: one timer per check interval and loop for every stream's acknowledgement
checks. A watched stream is checked every interval until its check says no more; its first
check comes within one interval; a removed stream is never checked again nor held; streams
of different intervals have their own rounds; with nobody watched no timer is armed."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable

from mianzhang._responses._watchdog import Watchdogs, loop_watchdogs

INTERVAL = 0.02


def watched(dogs: Watchdogs, interval: float) -> int:
    found = dogs._rounds.get(interval)
    return 0 if found is None else len(found._watched)


def armed(dogs: Watchdogs, interval: float) -> bool:
    found = dogs._rounds.get(interval)
    return found is not None and found._handle is not None


class Guard:
    """A guard that wants ``checks`` checks, then no more."""

    def __init__(self, checks: int = 1) -> None:
        self.left = checks
        self.at: list[float] = []  # loop times of its checks
        self.done = asyncio.Event()
        self.on_check: list[Callable[[], object]] = []

    def check(self, now: float) -> bool:
        self.at.append(now)
        for hook in self.on_check:
            hook()
        self.left -= 1
        if self.left <= 0:
            self.done.set()
            return False
        return True


async def test_many_streams_share_one_timer_and_are_each_checked_until_done() -> None:
    dogs = Watchdogs()
    loop = asyncio.get_running_loop()
    added = loop.time()
    guards = [Guard(checks=1 + i % 3) for i in range(100)]
    for guard in guards:
        dogs.watch(guard, INTERVAL)
    assert watched(dogs, INTERVAL) == 100 and armed(dogs, INTERVAL)
    await asyncio.wait_for(asyncio.gather(*(g.done.wait() for g in guards)), 10)
    for i, guard in enumerate(guards):
        assert len(guard.at) == 1 + i % 3  # checked until its check said no more
        assert guard.at[0] - added <= INTERVAL + 0.5  # first check: one interval (+ loop delay)
        gaps = [b - a for a, b in zip(guard.at, guard.at[1:], strict=False)]
        assert all(gap >= INTERVAL - 1e-3 for gap in gaps)  # one check per interval
    assert len({round(g.at[0], 6) for g in guards}) == 1  # one timer fired for them all
    assert watched(dogs, INTERVAL) == 0
    assert not armed(dogs, INTERVAL)  # nobody watched: no timer


async def test_a_stream_removed_by_another_streams_check_is_not_checked() -> None:
    dogs = Watchdogs()
    first, second = Guard(checks=5), Guard(checks=5)
    checked = asyncio.Event()
    first.on_check += [lambda: dogs.unwatch(second, INTERVAL), checked.set]
    second.on_check += [lambda: dogs.unwatch(first, INTERVAL), checked.set]
    dogs.watch(first, INTERVAL)
    dogs.watch(second, INTERVAL)
    await asyncio.wait_for(checked.wait(), 10)
    assert len(first.at) + len(second.at) == 1  # whichever ran first removed the other
    assert watched(dogs, INTERVAL) == 1


async def test_a_removed_stream_is_never_checked_nor_held() -> None:
    dogs = Watchdogs()
    kept, removed = Guard(checks=1), Guard(checks=1)
    dogs.watch(removed, INTERVAL)
    dogs.watch(kept, INTERVAL)
    dogs.unwatch(removed, INTERVAL)
    dogs.unwatch(removed, INTERVAL)  # twice: nothing
    dogs.unwatch(removed, 99.0)  # an interval nobody uses: nothing
    gone = weakref.ref(removed)
    del removed
    gc.collect()
    assert gone() is None  # the round holds no reference to it
    await asyncio.wait_for(kept.done.wait(), 10)


async def test_each_interval_has_its_own_round() -> None:
    dogs = Watchdogs()
    fast, slow = Guard(checks=3), Guard(checks=1)
    dogs.watch(fast, INTERVAL)
    dogs.watch(slow, 10.0)
    await asyncio.wait_for(fast.done.wait(), 10)
    assert slow.at == []  # its round's timer is 10 s away
    assert armed(dogs, 10.0) and not armed(dogs, INTERVAL)
    dogs.unwatch(slow, 10.0)


async def test_the_rounds_belong_to_the_running_loop() -> None:
    assert loop_watchdogs() is loop_watchdogs()

    def other() -> Watchdogs:
        async def get() -> Watchdogs:
            return loop_watchdogs()

        return asyncio.run(get())

    assert await asyncio.to_thread(other) is not loop_watchdogs()
