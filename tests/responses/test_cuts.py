"""_responses/_cuts.py: streams cut together are torn down at most ``CUT_BATCH`` per loop
iteration; a stream alone goes at once; one cancelled while waiting leaves the queue."""

from __future__ import annotations

import asyncio
import itertools

from mianzhang._responses._cuts import CUT_BATCH, Cuts


async def test_a_cut_alone_takes_its_turn_at_once() -> None:
    cuts = Cuts()
    task = asyncio.ensure_future(cuts.take())
    await asyncio.sleep(0)
    assert task.done()


async def test_a_crowd_of_cuts_is_torn_down_a_batch_per_iteration() -> None:
    cuts = Cuts()
    tasks = [asyncio.ensure_future(cuts.take()) for _ in range(200)]
    tasks[100].cancel()  # leaves the queue without using a turn
    done = []
    for _ in range(5):
        await asyncio.sleep(0)
        done.append(sum(t.done() and not t.cancelled() for t in tasks))
    # the first batch in the first iteration, then one batch per grant pass
    assert done[0] == CUT_BATCH
    assert all(b - a <= CUT_BATCH for a, b in itertools.pairwise(done))
    assert done[-1] == 199
    assert tasks[100].cancelled()


async def test_turns_start_again_after_a_quiet_iteration() -> None:
    cuts = Cuts()
    first = [asyncio.ensure_future(cuts.take()) for _ in range(CUT_BATCH + 1)]
    for _ in range(4):
        await asyncio.sleep(0)
    assert all(t.done() for t in first)
    later = asyncio.ensure_future(cuts.take())
    await asyncio.sleep(0)
    assert later.done()  # nobody waits: no queue
