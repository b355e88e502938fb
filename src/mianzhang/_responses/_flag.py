"""The one-waiter flag a stream's producer and sender signal each other with.

Two per live stream (the sender's *wake*, the producer's *drained*), so it is kept small: the
same semantics as ``asyncio.Event`` for the single task that waits on it, without the Event's
waiter deque (about 0.8 KiB per flag) and without a coroutine per wait.
"""

from __future__ import annotations

import asyncio

__all__ = ["Flag"]


class Flag:
    """A one-waiter ``asyncio.Event``: ``wait()`` hands out the future itself.

    Guarantees: a waiter whose future was handed out before ``set()`` is woken by it; a waiter
    cancelled while waiting cancels only its own future, never the flag. The producer reads
    ``_is_set`` directly (one attribute load per item instead of a call).
    """

    __slots__ = ("_is_set", "_waiter")

    def __init__(self) -> None:
        self._is_set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        if not self._is_set:
            self._is_set = True
            waiter = self._waiter
            if waiter is not None:
                self._waiter = None
                if not waiter.done():
                    waiter.set_result(None)

    def clear(self) -> None:
        self._is_set = False

    def is_set(self) -> bool:
        return self._is_set

    def wait(self) -> asyncio.Future[None]:
        """A future done once the flag is set (already done if it is). A waiter cancelled
        while waiting cancels only its own future."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = asyncio.get_running_loop().create_future()
            if self._is_set:
                waiter.set_result(None)
            else:
                self._waiter = waiter
        return waiter
