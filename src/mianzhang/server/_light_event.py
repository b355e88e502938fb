"""An ``asyncio.Event`` without its deque, for the two events uvicorn keeps per connection.

uvicorn's protocol holds an ``asyncio.Event`` per request cycle (``message_event``) and one per
connection (flow control's ``_is_writable_event``). Each ``asyncio.Event`` allocates a
``collections.deque`` for its waiters, whose first block is 64 slots: about 700 bytes per
event, 1.4 KB of every idle SSE connection, for events that at most one task ever waits on.
:class:`LightEvent` keeps the same behaviour (``wait`` returns ``True`` once set, ``set`` wakes
every waiter, ``clear`` resets) with its waiters in a list made only when someone waits.
"""

from __future__ import annotations

import asyncio

__all__ = ["LightEvent", "lighten"]


class LightEvent:
    """:class:`asyncio.Event`'s ``is_set``/``set``/``clear``/``wait``, in 2 slots."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if not self._value:
            self._value = True
            waiters, self._waiters = self._waiters, None
            for waiter in waiters or ():
                if not waiter.done():
                    waiter.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


def lighten(event: asyncio.Event | LightEvent) -> LightEvent:
    """A :class:`LightEvent` in ``event``'s state (set or not) to stand in for it; ``event``
    must have no waiter yet."""
    if isinstance(event, LightEvent):
        return event
    light = LightEvent()
    if event.is_set():
        light.set()
    return light
