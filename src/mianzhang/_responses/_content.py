"""A response's content as one async iterator, whatever it was given as.

* a *live source* (:class:`LiveSource`: it has ``push_iter``) is iterated through
  ``push_iter(deliver)``: while its reader is caught up, it may hand encoded bytes straight to
  the stream with ``deliver`` instead of yielding them (``_sender.Sender.deliver``);
* an async iterable is iterated as it is (its ``aclose``, if any, is the caller's to await);
* a ``list`` or ``tuple`` is iterated on the loop (no thread: nothing in it can block);
* any other sync iterable is stepped in the thread pool, one ``next()`` per step, and closed
  (``close()``, so its ``finally`` blocks run) when the iteration ends, fails or is cancelled.
  A cancelled step is waited for, never abandoned: ``close()`` never meets a generator that is
  still executing in another thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any, Protocol, runtime_checkable

import anyio.to_thread

__all__ = ["Content", "Deliver", "LiveSource", "iterate", "open_content"]

Content = AsyncIterable[Any] | Iterable[Any]

Deliver = Callable[[bytes, int], bool]
"""``deliver(chunk, items)``: hand ``items`` encoded events to the stream at once; ``False``
if it cannot take them now (the source keeps them and yields them later, in order)."""

_END = object()


@runtime_checkable
class LiveSource(Protocol):
    """Content that can push: iterated through :meth:`push_iter`, which may hand encoded
    bytes to ``deliver`` between the items it yields (in order with them)."""

    def push_iter(self, deliver: Deliver) -> AsyncIterator[Any]: ...


def iterate(content: Content) -> AsyncIterator[Any]:
    """The content as an async iterator (see the module docstring; a live source is
    iterated without pushing)."""
    if isinstance(content, AsyncIterable):
        return content.__aiter__()
    if isinstance(content, list | tuple):
        return _iterate_sequence(content)
    return _iterate_in_thread(content)


def open_content(content: Content, deliver: Deliver) -> tuple[AsyncIterator[Any], bool]:
    """The content as an async iterator, and whether it may push to ``deliver`` (a live
    source)."""
    push_iter = getattr(content, "push_iter", None)
    if push_iter is not None:
        return push_iter(deliver), True
    return iterate(content), False


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
