"""``mianzhang._tasks``: owned tasks are cancelled and awaited; resources closed on exit."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from mianzhang._tasks import AsyncResource, cancel_and_wait, own_task


async def _forever(started: asyncio.Event, ended: list[str]) -> None:
    started.set()
    try:
        await asyncio.Event().wait()
    finally:
        ended.append("ended")


async def test_cancel_and_wait_returns_once_the_task_ended() -> None:
    started, ended = asyncio.Event(), []
    task = asyncio.create_task(_forever(started, ended))
    await started.wait()
    async with asyncio.timeout(5):
        await cancel_and_wait(task)
    assert task.cancelled()
    assert ended == ["ended"]


async def test_cancel_and_wait_drops_what_the_task_ended_with() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails())
    await asyncio.wait({task})
    await cancel_and_wait(task)  # no exception: its owner is tearing it down
    assert isinstance(task.exception(), RuntimeError)


async def test_cancel_and_wait_lets_the_caller_be_cancelled() -> None:
    started, swallowed = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        swallowed.set()
        await asyncio.Event().wait()  # ignored the first cancellation

    inner = asyncio.create_task(stubborn())
    await started.wait()
    waiter = asyncio.create_task(cancel_and_wait(inner))
    await swallowed.wait()
    waiter.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await asyncio.wait({inner})
    assert inner.cancelled()


async def test_own_task_is_cancelled_and_awaited_when_the_stack_closes() -> None:
    started, ended = asyncio.Event(), []
    async with contextlib.AsyncExitStack() as stack:
        task = own_task(stack, _forever(started, ended), name="test:owned")
        await started.wait()
        assert task.get_name() == "test:owned"
        assert not task.done()
    assert task.cancelled()
    assert ended == ["ended"]


class _Resource(AsyncResource):
    def __init__(self) -> None:
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1


async def test_async_resource_closes_on_exit() -> None:
    async with _Resource() as resource:
        assert resource.closed == 0
    assert resource.closed == 1


async def test_async_resource_closes_when_the_block_raises() -> None:
    resource = _Resource()
    with pytest.raises(KeyError):
        async with resource:
            raise KeyError("inside")
    assert resource.closed == 1


async def test_async_resource_without_aclose_says_so() -> None:
    with pytest.raises(NotImplementedError):
        async with AsyncResource():
            pass
