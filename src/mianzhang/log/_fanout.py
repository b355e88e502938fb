"""One pass per stream for every caught-up reader: the event encoded once, bytes pushed.

A reader served as SSE (``serve.py``) that has caught up with its stream does not wait for a
wake-up of its own: its ``follow`` *parks* it on the stream's :class:`Fanout` (the stream's
notifier) with a :class:`Push`: the response's ``deliver`` (``mianzhang._responses``: send the
bytes now if the connection is idle, else buffer them) and the function that encodes an event.
When events are appended, ``notify`` schedules ONE pass over the parked readers, run in the
loop's next iteration (so a burst of appends is one pass, and the appender is not held up):

* the new events are encoded once per encoder and the **same bytes object** is handed to every
  parked reader at the same position (bytes are immutable: no reader can change another's),
  at most ``PIECE`` bytes per reader and pass (the rest in the next iterations);
* a reader whose ``deliver`` accepts them moves on and stays parked; one that refuses (its
  connection is busy and its buffer full), or that the stream cannot serve from memory (it was
  trimmed past, the stream ended, changed history or failed), is *detached*: its ``follow``
  resumes at its own position, on its own path, with no gap and no duplicate (and gets its
  ``Reset`` or its end there, exactly as a reader that was never parked). A detached reader
  gets no more pushes at once; its ``follow`` is resumed in batches of at most
  ``DETACH_BATCH`` per loop iteration, so a crowd refusing together (a thousand stalled
  connections whose buffers fill in the same pass) does not hold the loop up for the readers
  that keep up: their next passes run between the batches.

Waiters of the plain :class:`~._common.Notifier` kind (``wait()``) are woken as before, by the
same ``notify``. Costs per event and reader: no future, no task step, no encoding; the only
objects made per reader are those its ``send`` makes (measured in ``bench/fanout_trace.py``).

Ownership: a parked reader leaves when the pass detaches it, or when its ``follow`` is
cancelled while it waits (the done callback of the future it awaits); a pass is one loop
callback, never a task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ._common import Notifier
from ._protocol import LogEvent

__all__ = ["DETACH_BATCH", "Fanout", "Parked", "Push", "Source"]

logger = logging.getLogger("mianzhang.log")

PIECE = 64 * 1024
"""Bytes of events one pass hands each reader, at most (plus one event): a burst of appends
(a producer faster than the pass, a batch read from Redis) goes out one piece per loop
iteration, so no connection is handed more at once than a stream's own batch."""

DETACH_BATCH = 64
"""Detached readers whose ``follow`` resumes in one loop iteration, at most (each resumption is
a task step of that reader's stream: measured, a thousand at once held the loop about 25 ms)."""

Source = Callable[[int, Any], Sequence[LogEvent] | None]
"""``source(position, token)``: the events from seq ``position`` to the newest, ``()`` when
there is none yet, ``None`` when the stream cannot serve a parked reader at ``position`` from
memory (detach it). ``token`` is what the reader parked with (its epoch and version: Redis)."""


class Push:
    """What a reader parks with: the response's ``deliver(chunk, items) -> bool`` and the
    encoder of one event (one shared function per format, so the pass encodes once)."""

    __slots__ = ("deliver", "encode")

    def __init__(
        self, deliver: Callable[[bytes, int], bool], encode: Callable[[LogEvent], bytes]
    ) -> None:
        self.deliver = deliver
        self.encode = encode


class Parked:
    """One parked reader: its response's ``deliver`` and its encoder, the next seq it wants,
    where the stream's events come from (``source(position, token)``) and its token, and the
    future its ``follow`` awaits."""

    __slots__ = ("deliver", "encode", "future", "position", "source", "token")

    def __init__(
        self, push: Push, position: int, source: Source, token: Any, future: asyncio.Future[int]
    ) -> None:
        self.deliver = push.deliver
        self.encode = push.encode
        self.position = position
        self.source = source
        self.token = token
        self.future = future


class Fanout(Notifier):
    """The notifier of one stream, with parked readers served by one pass per batch of
    appends (see the module docstring)."""

    __slots__ = ("_detaching", "_loop", "_parked", "_scheduled")

    def __init__(self) -> None:
        super().__init__()
        # by the future its follow awaits, in parking order
        self._parked: dict[asyncio.Future[int], Parked] = {}
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._detaching: list[Parked] = []  # detached, their follow not resumed yet

    @property
    def parked(self) -> int:
        """Readers parked now."""
        return len(self._parked)

    def park(self, push: Push, position: int, source: Source, token: Any) -> asyncio.Future[int]:
        """Park a caught-up reader wanting seq ``position``: the future to await resolves
        with the position to resume at once the reader is detached. A reader cancelled while
        it awaits leaves (the future's done callback)."""
        loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._parked[future] = Parked(push, position, source, token, future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: asyncio.Future[int]) -> None:
        self._parked.pop(future, None)

    def notify(self) -> None:
        """Wake the waiters, and serve the parked readers in one pass soon."""
        if self._waiters:
            super().notify()
        if self._parked and not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._pass)

    def _pass(self) -> None:
        """Hand what is new to every parked reader (see the module docstring)."""
        self._scheduled = False
        detached: list[Parked] = []
        position = -1  # the position, token and encoder of the chunk last built
        token: Any = None
        encode: Any = None
        built: tuple[bytes, int, bool] | None = None
        chunk, count, more = b"", 0, False
        for parked in self._parked.values():
            if parked.position != position or parked.encode is not encode or parked.token != token:
                position, token, encode = parked.position, parked.token, parked.encode
                built = _build(parked.source, position, token, encode)
                if built is not None:
                    chunk, count, rest = built
                    more = more or rest
            if built is None:
                detached.append(parked)
            elif count:
                try:
                    taken = parked.deliver(chunk, count)
                except Exception:  # a bug in a sink: that reader takes its own path
                    logger.exception("push to a reader failed")
                    taken = False
                if taken:
                    parked.position = position + count
                else:
                    detached.append(parked)
        if detached:
            self._let_go(detached)
        if more and self._parked and self._loop is not None:  # the next piece, next iteration
            self._scheduled = True
            self._loop.call_soon(self._pass)

    def _let_go(self, detached: list[Parked]) -> None:
        """No more pushes to ``detached``; resume their ``follow`` now, or in batches from
        the next iteration on when there are many (see the module docstring)."""
        parked = self._parked
        for one in detached:
            parked.pop(one.future, None)
        waiting = self._detaching
        if not waiting and len(detached) <= DETACH_BATCH:
            for one in detached:
                _resume(one)
            return
        waiting += detached
        if len(waiting) == len(detached) and self._loop is not None:  # not scheduled yet
            self._loop.call_soon(self._resume_some)

    def _resume_some(self) -> None:
        """Resume the next ``DETACH_BATCH`` detached readers; the rest next iteration."""
        waiting = self._detaching
        batch = waiting[:DETACH_BATCH]
        del waiting[:DETACH_BATCH]
        for one in batch:
            _resume(one)
        if waiting and self._loop is not None:
            self._loop.call_soon(self._resume_some)

    def release(self) -> None:
        """Detach every parked reader now, and resume every detached one (each resumes on
        its own path)."""
        parked, waiting = list(self._parked.values()), self._detaching
        self._parked.clear()
        self._detaching = []
        for one in (*waiting, *parked):
            _resume(one)


def _resume(parked: Parked) -> None:
    """Resume a detached reader's ``follow`` at its position (unless it was cancelled)."""
    future = parked.future
    if not future.done():
        future.set_result(parked.position)


def _build(
    source: Source, position: int, token: Any, encode: Callable[[LogEvent], bytes]
) -> tuple[bytes, int, bool] | None:
    """The events from ``position`` encoded as one chunk of at most ``PIECE`` bytes (plus one
    event), how many, and whether more remain; ``None`` if the stream cannot serve them (or
    an event cannot be encoded: the reader meets that failure on its own path)."""
    events = source(position, token)
    if events is None:
        return None
    if not events:
        return b"", 0, False
    try:
        parts = [encode(events[0])]
        size = len(parts[0])
        for index in range(1, len(events)):
            if size >= PIECE:
                break
            part = encode(events[index])
            parts.append(part)
            size += len(part)
    except Exception:
        return None
    count = len(parts)
    return (parts[0] if count == 1 else b"".join(parts)), count, count < len(events)
