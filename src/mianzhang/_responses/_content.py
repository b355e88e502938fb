"""A response's content as one async iterator, whatever it was given as.

* an async iterable is iterated as it is (its ``aclose``, if any, is the caller's to await);
* a ``list`` or ``tuple`` is iterated on the loop (no thread: nothing in it can block);
* any other sync iterable is stepped in the thread pool, one ``next()`` per step, and closed
  (``close()``, so its ``finally`` blocks run) when the iteration ends, fails or is cancelled.
  A cancelled step is waited for, never abandoned: ``close()`` never meets a generator that is
  still executing in another thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import anyio.to_thread

__all__ = ["Content", "iterate"]

Content = AsyncIterable[Any] | Iterable[Any]

_END = object()


def iterate(content: Content) -> AsyncIterator[Any]:
    """The content as an async iterator (see the module docstring)."""
    if isinstance(content, AsyncIterable):
        return content.__aiter__()
    if isinstance(content, list | tuple):
        return _iterate_sequence(content)
    return _iterate_in_thread(content)


async def _iterate_sequence(items: list[Any] | tuple[Any, ...]) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def _iterate_in_thread(content: Iterable[Any]) -> AsyncIterator[Any]:
    """A sync iterable stepped in the thread pool, closed (its ``finally`` run) at the end.

    A thread cannot be interrupted: when cancelled while ``next()`` runs, this waits for that
    step to return before closing, so ``close()`` never meets a generator still executing.
    (Starlette's ``iterate_in_threadpool`` abandons the step and never closes the iterator.)
    """
    iterator = iter(content)
    try:
        while True:
            step = asyncio.ensure_future(anyio.to_thread.run_sync(next, iterator, _END))
            try:
                item = await asyncio.shield(step)
            except asyncio.CancelledError:
                await asyncio.wait((step,))
                if not step.cancelled():
                    step.exception()  # retrieved: the cancellation is what propagates
                raise
            if item is _END:
                return
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await anyio.to_thread.run_sync(close)
