"""One object per running event loop, made on first use (an anyio ``RunVar``): the heartbeat
timer, the loop's iteration count and its fair turns are each shared by every stream of a loop
and by no other loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from anyio.lowlevel import RunVar

__all__ = ["loop_local"]

T = TypeVar("T")


def loop_local(name: str, factory: Callable[[], T]) -> Callable[[], T]:
    """A getter of the running loop's ``factory()`` object, made by its first call on that loop
    and forgotten with the loop. Call it from a task: anyio finds the running loop through
    the current task, so from a plain loop callback (a live source's push) the getter
    raises; code that runs in callbacks fetches its object beforehand and keeps it."""
    var: RunVar[T] = RunVar(name)

    def get() -> T:
        try:
            return var.get()
        except LookupError:
            value = factory()
            var.set(value)
            return value

    return get
