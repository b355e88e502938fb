"""Fair turns for busy producers (``mianzhang._responses._turns``).

Loop iterations are counted exactly: the tests that talk about iterations run on a
``SelectorEventLoop`` whose selector counts its ``select()`` calls, and asyncio calls ``select()``
once at the start of every iteration. So ``selector.iterations`` read from any callback or task
step is the number of the iteration it runs in. ``asyncio.sleep(0)`` below only moves the loop
on by an iteration where the test is about iterations; every wait is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import gc
import selectors
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import pytest
import uvloop

from mianzhang._responses._turns import Turns, loop_turns

TIMEOUT = 5.0
T = TypeVar("T")


class CountingSelector(selectors.DefaultSelector):
    """Counts the event loop's iterations (one ``select()`` call each)."""

    def __init__(self) -> None:
        super().__init__()
        self.iterations = 0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self.iterations += 1
        return super().select(timeout)


def run_counted(main: Callable[[CountingSelector], Awaitable[T]]) -> T:
    """Run ``main(selector)`` on a fresh loop whose iterations ``selector`` counts (bounded)."""
    selector = CountingSelector()

    async def bounded() -> T:
        async with asyncio.timeout(TIMEOUT):
            return await main(selector)

    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(selector)) as runner:
        return runner.run(bounded())


async def next_iteration(selector: CountingSelector) -> None:
    """Return in a later loop iteration than the current one."""
    now = selector.iterations
    while selector.iterations == now:
        await asyncio.sleep(0)


async def assert_take_does_not_yield(turns: Turns, selector: CountingSelector | None) -> None:
    """``take()`` returns before anything else runs: a callback scheduled just before has not
    run, and (when counted) the loop is still in the same iteration."""
    ran: list[int] = []
    asyncio.get_running_loop().call_soon(ran.append, 1)
    before = selector.iterations if selector is not None else 0
    await turns.take()
    assert ran == []
    if selector is not None:
        assert selector.iterations == before


# -- a producer alone --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)
def test_a_lone_producer_takes_its_turn_without_yielding(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def main() -> None:
        async with asyncio.timeout(TIMEOUT):
            turns = loop_turns()
            assert not turns.contended
            await assert_take_does_not_yield(turns, None)
            assert not turns.contended
            # a second turn in the same iteration is not free: it waits for a later iteration
            ran: list[int] = []
            asyncio.get_running_loop().call_soon(ran.append, 1)
            await turns.take()
            assert ran == [1]

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


def test_a_lone_producer_passes_at_once_in_every_later_iteration() -> None:
    async def main(selector: CountingSelector) -> None:
        turns = loop_turns()
        for _ in range(5):
            await assert_take_does_not_yield(turns, selector)
            # the grant pass of this iteration's turn runs in the next one and finds nobody:
            # one iteration later the turns are free again
            await next_iteration(selector)
            await next_iteration(selector)

    run_counted(main)


# -- contention --------------------------------------------------------------------------------
def test_waiters_get_their_turns_first_come_first_served_one_per_iteration() -> None:
    n = 6

    async def main(selector: CountingSelector) -> None:
        turns = loop_turns()
        queued: list[int] = []  # the order in which the producers asked for a turn
        resumed: dict[int, int] = {}  # producer -> iteration of its turn
        contended_at_turn: dict[int, bool] = {}

        async def producer(i: int) -> None:
            queued.append(i)
            await turns.take()
            resumed[i] = selector.iterations
            contended_at_turn[i] = turns.contended

        start = selector.iterations + 1  # the producers' first steps run in the next iteration
        tasks = [asyncio.create_task(producer(i)) for i in range(n)]
        await asyncio.gather(*tasks)

        assert sorted(queued) == list(range(n))
        first, *waiters = queued
        assert resumed[first] == start  # nobody had a turn yet: it passed at once
        iterations = [resumed[i] for i in waiters]
        # FIFO, at most one turn per iteration: strictly increasing in queue order
        assert iterations == sorted(set(iterations)), (queued, resumed)
        assert iterations[0] > start
        # bounded wait: one iteration per producer queued ahead (plus the grant pass)
        for ahead, i in enumerate(waiters):
            assert resumed[i] <= start + ahead + 2, (ahead, resumed)
        # contended while others still wait, not once the last waiter has its turn
        assert [contended_at_turn[i] for i in waiters] == [True] * (n - 2) + [False]
        assert not turns.contended
        await next_iteration(selector)
        await next_iteration(selector)
        await assert_take_does_not_yield(turns, selector)

    run_counted(main)


def test_a_producer_taking_again_queues_behind_the_others() -> None:
    """Busy producers take a turn before each batch: they alternate round-robin."""
    producers, rounds = 3, 4

    async def main(selector: CountingSelector) -> None:
        turns = loop_turns()
        grants: list[tuple[int, int]] = []  # (iteration, producer)

        async def producer(i: int) -> None:
            for _ in range(rounds):
                await turns.take()
                grants.append((selector.iterations, i))

        await asyncio.gather(*(producer(i) for i in range(producers)))

        iterations = [it for it, _ in grants]
        order = [i for _, i in grants]
        # producer 0 passes at once and asks again before 1 and 2 have asked: it is queued
        # first; from then on the turns go round until 0 has had its four
        assert order == [0, 0, 1, 2, 0, 1, 2, 0, 1, 2, 1, 2]
        assert iterations[1:] == sorted(set(iterations[1:]))  # one turn per iteration

    run_counted(main)


# -- cancellation ------------------------------------------------------------------------------
def test_a_waiter_cancelled_while_queued_is_skipped_without_using_a_turn() -> None:
    async def main(selector: CountingSelector) -> None:
        turns = loop_turns()
        resumed: dict[str, int] = {}

        async def producer(name: str) -> None:
            await turns.take()
            resumed[name] = selector.iterations

        names = ["holder", "a", "cancelled", "b"]
        tasks = {name: asyncio.create_task(producer(name)) for name in names}
        await next_iteration(selector)  # the producers have asked for their turns
        assert list(resumed) == ["holder"]  # the others are queued, none has had a turn
        assert turns.contended
        tasks["cancelled"].cancel()
        with pytest.raises(asyncio.CancelledError):
            await tasks["cancelled"]
        await asyncio.gather(tasks["a"], tasks["b"], tasks["holder"])

        assert "cancelled" not in resumed
        assert resumed["holder"] < resumed["a"]
        # the cancelled waiter between them cost no iteration
        assert resumed["b"] == resumed["a"] + 1
        assert not turns.contended
        # after an iteration without waiters a lone producer passes at once again
        await next_iteration(selector)
        await next_iteration(selector)
        await assert_take_does_not_yield(turns, selector)

    run_counted(main)


def test_when_every_waiter_is_cancelled_the_turns_become_free() -> None:
    async def main(selector: CountingSelector) -> None:
        turns = loop_turns()
        waiters = [asyncio.create_task(turns.take()) for _ in range(3)]
        await turns.take()  # this iteration's turn: the waiters (next iteration) are queued
        await next_iteration(selector)
        assert turns.contended
        assert not any(w.done() for w in waiters)
        for w in waiters:
            w.cancel()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        await next_iteration(selector)
        await next_iteration(selector)
        assert not turns.contended
        await assert_take_does_not_yield(turns, selector)

    run_counted(main)


def test_a_producer_cancelled_after_its_turn_was_granted_does_not_stall_the_queue() -> None:
    async def main(selector: CountingSelector) -> None:
        turns = loop_turns()
        resumed: list[str] = []
        granted_before_cancel: list[bool] = []

        async def producer(name: str) -> None:
            await turns.take()
            resumed.append(name)

        loop = asyncio.get_running_loop()
        first = asyncio.create_task(producer("first"))
        second = asyncio.create_task(producer("second"))
        # this iteration's turn; in the next one both producers queue, then the grant pass
        # gives "first" its turn and cancel_first runs right after it, before "first" resumes
        await turns.take()

        def cancel_first() -> None:
            granted_before_cancel.append(len(turns._waiters) == 1 and not resumed)
            first.cancel()

        loop.call_soon(cancel_first)
        with pytest.raises(asyncio.CancelledError):
            await first
        await second  # the queue goes on: "second" still gets its turn
        assert granted_before_cancel == [True]
        assert resumed == ["second"]
        await next_iteration(selector)
        await next_iteration(selector)
        assert not turns.contended
        await assert_take_does_not_yield(turns, selector)

    run_counted(main)


# -- one queue per event loop ------------------------------------------------------------------
def test_loop_turns_is_one_queue_per_event_loop() -> None:
    async def one_loop() -> tuple[Turns, Turns, Turns]:
        seen_by_an_older_task: list[Turns] = []
        first_use = asyncio.Event()

        async def older() -> None:  # its context was copied before the first use
            await first_use.wait()
            seen_by_an_older_task.append(loop_turns())

        async with asyncio.TaskGroup() as tg:
            tg.create_task(older())
            first = loop_turns()
            first_use.set()
        return first, loop_turns(), seen_by_an_older_task[0]

    a = asyncio.run(one_loop())
    b = asyncio.run(one_loop())
    c = anyio.run(one_loop)
    for same_loop in (a, b, c):
        assert same_loop[0] is same_loop[1] is same_loop[2]
    assert a[0] is not b[0]
    assert c[0] is not a[0]
    assert c[0] is not b[0]


async def test_loop_turns_serve_the_running_loop() -> None:
    """The queue of this loop grants its turns on this loop (a waiter is resumed here)."""
    turns = loop_turns()
    await turns.take()
    waiter = asyncio.create_task(turns.take())
    async with asyncio.timeout(TIMEOUT):
        await waiter
    assert loop_turns() is turns


def test_a_closed_loop_and_its_turns_are_not_kept_alive() -> None:
    """The queue is kept per loop in a RunVar (weakly keyed by the loop): nothing in it may
    refer back to the loop, or every loop that ever ran a stream would live forever."""
    refs: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def main() -> None:
        await loop_turns().take()
        refs.append(weakref.ref(asyncio.get_running_loop()))

    asyncio.run(main())
    gc.collect()
    assert refs[0]() is None
