"""StallTimeout: only a wait for the upstream that lasts the limit times out (as
TimeoutError, at the await); time the consumer spends between waits never counts; a real
cancellation stays a cancellation; nothing is left armed after the block."""

from __future__ import annotations

import asyncio

import pytest

from mianzhang.llm._stall import StallTimeout


async def test_a_wait_as_long_as_the_limit_raises_timeout_error() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    async with asyncio.timeout(5):
        with pytest.raises(TimeoutError):
            async with StallTimeout(0.05) as stall:
                stall.waiting()
                await never
    assert never.cancelled()


async def test_time_between_waits_does_not_count() -> None:
    async with asyncio.timeout(5), StallTimeout(0.05) as stall:
        for _ in range(3):
            stall.waiting()
            await asyncio.sleep(0)  # a chunk that is there at once
            stall.arrived()
            await asyncio.sleep(0.12)  # the consumer is slow: longer than the limit


async def test_a_real_cancellation_is_not_turned_into_a_timeout() -> None:
    entered = asyncio.Event()

    async def waits() -> None:
        async with StallTimeout(10.0) as stall:
            stall.waiting()
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(waits())
    async with asyncio.timeout(5):
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_nothing_fires_after_the_block() -> None:
    async with StallTimeout(0.05) as stall:
        stall.waiting()
        await asyncio.sleep(0)
    await asyncio.sleep(0.12)  # would be cancelled if the timer were still armed
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
