"""Owned tasks and closeable resources: the teardown every layer repeats, written once. No I/O.

Structured concurrency in mianzhang means every task has an owner that cancels and awaits it,
and every resource is released by ``aclose()``, also when used as ``async with``. Three shapes
of that recur from the event log up to the server; they live here, at the bottom of the
package, so that every layer may use them:

* :func:`cancel_and_wait`: cancel a task and wait until it has ended;
* :func:`own_task`: start a task that an :class:`~contextlib.AsyncExitStack` cancels and awaits
  when it closes;
* :class:`AsyncResource`: ``async with x`` gives ``x`` and awaits ``x.aclose()`` on the way
  out, whatever happened inside.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Self

__all__ = ["AsyncResource", "cancel_and_wait", "own_task"]


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and return once it has ended. What it ended with (its cancellation, a
    result, an exception) is dropped: its owner is tearing it down, and a task whose failure
    matters reports it itself. Cancelling the caller while it waits cancels it as usual (the
    task has been cancelled already)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def own_task(
    stack: contextlib.AsyncExitStack, work: Coroutine[Any, Any, None], *, name: str
) -> asyncio.Task[None]:
    """Run ``work`` in a task that ``stack`` cancels and awaits (:func:`cancel_and_wait`) when
    it closes."""
    task = asyncio.create_task(work, name=name)
    stack.push_async_callback(cancel_and_wait, task)
    return task


class AsyncResource:
    """Base of the objects released by :meth:`aclose`: ``async with resource`` gives the
    resource and awaits its ``aclose()`` when the block ends, however it ends (an exception
    inside propagates after the close). A subclass that must start something on entry
    overrides ``__aenter__``."""

    async def aclose(self) -> None:
        """Release what the resource holds (subclasses define it)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
