"""The producing half of one stream: the iterator in a task, encoding into a bounded buffer.

Guarantees:

* **Order.** Items are encoded and buffered in the order the iterator yields them; the sender
  takes the buffer whole, so bytes leave in that order.
* **Bounded.** ``pending`` counts bytes produced and not yet accepted by the server's ``send``
  (buffered or in flight). Once it reaches ``max_buffer`` the iterator is not advanced until
  the sender reports bytes accepted: at most ``max_buffer`` plus one item are ever pending.
* **Never held back.** The sender is woken as soon as an item is buffered; a ready item waits
  only for the producer's next await (the iterator's, or a checkpoint's), never for more items.
* **Fair.** Each batch of ``max_buffer`` bytes is made in this loop's turn (``_turns``), so
  bulk streams share the loop one batch per iteration. A producer whose iterator let the loop
  go round since its last checkpoint (a live reader waiting for events, ``_ticks``; also for
  its first item) hogs nothing and does not queue for a turn: it is not held back behind the
  busy streams.
* **Closed.** Whatever ends the task (the iterator's end, its failure, a cancellation), ``done``
  is set, the sender is woken and the iterator's ``aclose()`` is awaited, so its ``finally``
  blocks run before the task ends. A failure is recorded in ``failure``, never raised; a
  cancellation propagates. The task is cancelled at most once (a second cancellation would
  interrupt the iterator's cleanup while it awaits).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .._sse import ServerSentEvent
from ._flag import Flag
from ._ticks import Ticks, loop_ticks
from ._turns import Turns, loop_turns

if TYPE_CHECKING:
    from ._response import _StreamingBase

__all__ = ["Producer"]


class Producer:
    """Fills ``buffer`` from the response's content; the sender empties it with :meth:`take`
    and reports what the server accepted with :meth:`accepted`."""

    __slots__ = (
        "_drained",
        "_extra_items",
        "_wake",
        "buffer",
        "done",
        "failure",
        "pending",
        "task",
    )

    def __init__(self, wake: Flag) -> None:
        self.buffer: list[bytes] = []
        self._extra_items = 0  # events in pushed chunks beyond one per chunk
        self.pending = 0  # bytes produced and not yet accepted by ``send``
        self.done = False
        self.failure: BaseException | None = None
        self.task: asyncio.Task[None] | None = None
        self._wake = wake  # the sender's: set when there is something to send, or the end
        self._drained = Flag()  # set when the sender reports bytes accepted

    def start(self, iterator: AsyncIterator[Any], response: _StreamingBase) -> asyncio.Task[None]:
        """Run the producer task (owned by the stream, which cancels and awaits it). Once it
        is done the producer lets go of it: a cancelled task keeps its ``CancelledError``,
        whose traceback holds the task's frame, which holds this producer, so holding the task
        too would leave every cancelled stream to the cycle collector."""
        task = self.task = asyncio.create_task(self._produce(iterator, response))
        task.add_done_callback(self._let_go)
        return task

    def _let_go(self, task: asyncio.Task[None]) -> None:
        if self.task is task:
            self.task = None

    def cancel(self) -> None:
        """Cancel the producer at most once: a second cancellation would interrupt the
        iterator's ``finally`` blocks while they await their cleanup."""
        task = self.task
        if task is not None and not task.done() and not task.cancelling():
            task.cancel()

    def take(self) -> tuple[bytes, int]:
        """Everything buffered, as one body (write coalescing), and the number of items in it."""
        buffer = self.buffer
        chunks = len(buffer)
        body = buffer[0] if chunks == 1 else b"".join(buffer)
        buffer.clear()
        items = chunks + self._extra_items
        self._extra_items = 0
        return body, items

    def push(self, chunk: bytes, items: int) -> None:
        """Buffer ``chunk`` (``items`` encoded events) pushed by a live source, behind what is
        buffered, and wake the sender."""
        self.buffer.append(chunk)
        self.pending += len(chunk)
        self._extra_items += items - 1
        self._wake.set()

    def accepted(self, size: int) -> None:
        """``size`` bytes taken from the buffer are no longer pending: room for more."""
        self.pending -= size
        self._drained.set()

    async def _produce(self, iterator: AsyncIterator[Any], response: _StreamingBase) -> None:
        """Encode items into the buffer, pausing at each checkpoint: after the first item, and
        then whenever a batch of ``max_buffer`` bytes may be complete. (One coroutine: a
        frame less for every stream, also while it waits.)"""
        encode = response.encode_item
        sse = response.sse_items
        limit = response.max_buffer
        buffer = self.buffer
        wake = self._wake
        turns = loop_turns()
        ticks = loop_ticks()
        produced = 0
        checkpoint = 0  # the first item is a checkpoint
        first = True
        mark = ticks.mark()  # the loop's iteration count at the last checkpoint
        try:
            async for item in iterator:
                # the hot path: an SSE response fed ServerSentEvent objects, inlined
                chunk = item.encode() if sse and type(item) is ServerSentEvent else encode(item)
                buffer.append(chunk)
                size = len(chunk)
                self.pending += size
                produced += size
                if not wake._is_set:
                    wake.set()
                if produced < checkpoint:
                    continue
                mark = await self._pause(turns, limit, first, ticks, mark)
                first = False
                checkpoint = produced + limit - self.pending
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failure = exc
        finally:
            self.done = True
            self._wake.set()
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _pause(self, turns: Turns, limit: int, first: bool, ticks: Ticks, mark: int) -> int:
        """At a checkpoint: let the sender run, wait for room, and take this loop's turn
        unless the loop went round since the last checkpoint (``mark``); the new mark."""
        if first:
            # one loop turn after the first item: the sender puts the headers and the first
            # event on the wire now instead of after a full batch; the rest of the batch waits
            # for this loop's turn, unless the iterator already waited for the first item
            waited = ticks.passed(mark)
            await asyncio.sleep(0)
            if not waited:
                await turns.take()
        elif self.pending >= limit:
            drained = self._drained
            while self.pending >= limit:
                drained.clear()
                await drained.wait()
            await turns.take()  # the next batch: the next turn
        elif turns.contended and not ticks.passed(mark):
            await turns.take()  # a batch's worth made in one iteration while others wait
        return ticks.mark()
