"""Awaiting a stream's tasks when it ends, within the response's ``cleanup_timeout``.

Guarantees of :func:`await_helpers`:

* **Awaited.** It returns only once every task given is done (finished or cancelled): nothing
  a stream started outlives it.
* **Bounded, where it can be.** With a ``limit`` (seconds), tasks still running after it are
  cancelled (the iterator's ``finally`` is interrupted at its next ``await``) and a warning is
  logged; cleanup that ignores cancellation (a shield, a blocking call) cannot be cut short.
* **Never raises** a task's failure: failures are logged. Its own cancellation propagates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

__all__ = ["await_helpers"]

logger = logging.getLogger("mianzhang.responses")


async def await_helpers(helpers: Sequence[asyncio.Future[Any]], limit: float | None) -> None:
    """Await ``helpers`` (see the module docstring)."""
    try:
        if limit is None:
            await asyncio.gather(*helpers, return_exceptions=True)
        else:
            async with asyncio.timeout(limit):
                await asyncio.gather(*helpers, return_exceptions=True)
    except TimeoutError:
        # cancelling the gather cancelled every task still running, and it completed only
        # once they were all done
        logger.warning("stream cleanup cancelled after %ss (cleanup_timeout)", limit)
    for helper in helpers:
        if helper.done() and not helper.cancelled():
            failure = helper.exception()
            if isinstance(failure, Exception):
                logger.error("stream helper failed", exc_info=failure)
