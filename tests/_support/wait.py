"""Waiting for a condition in tests: poll with a deadline, never a fixed sleep.

Use these instead of hand-written deadline loops. A test that must wait for something it
cannot await directly (a process's state, a counter in another task) polls the condition here;
the timeout bounds the test, it is not a synchronisation device.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

__all__ = ["eventually", "eventually_sync"]


async def eventually(
    check: Callable[[], Awaitable[bool] | bool],
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str | None = None,
) -> None:
    """Poll ``check`` (sync or async) until it returns true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], bool],
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str | None = None,
) -> None:
    """:func:`eventually` for synchronous tests (a thread, a subprocess, a socket)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout}s")
        time.sleep(interval)
