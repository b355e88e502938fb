"""A :class:`FileTail` as SSE events: each line one event whose id is ``{epoch}-{offset}``.

A reconnect with that id as ``Last-Event-ID`` continues with the next line. A ``reset`` event
(JSON ``reason``, ``requested``, ``first_available``, ``epoch``) announces that the lines
asked for are gone (the file was rotated or truncated, or the id is not one of this file's);
its id is ``{epoch}-0``, the start of the current file, so a reconnect after it resumes from
there instead of asking for the lost position again.

A tail has no producer to lose (unlike generations and jobs, which hold a lease in the log):
each reader's own request reads the file. If the instance serving it dies, the connection
drops and the reader reconnects, to any instance that can read the file, after its last id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import orjson

from .._errors import StreamNotFound
from .._sse import ServerSentEvent
from ..log._protocol import LogEvent, format_id
from ._tail import FileTail

__all__ = ["tail_events"]


async def tail_events(
    tail: FileTail, name: str, after: str | None, *, last_lines: int
) -> AsyncIterator[ServerSentEvent]:
    """The lines of ``tail`` after ``after`` (else its last ``last_lines`` lines), then new
    lines, until closed. A file that does not exist raises ``StreamNotFound(name)`` on first
    iteration (before any byte is sent: a 404). Closing this iterator closes the file."""
    try:
        async with aclosing(tail.follow(after, last_lines=last_lines)) as items:
            async for item in items:
                if isinstance(item, LogEvent):
                    yield ServerSentEvent(item.data, id=item.id)
                    continue
                payload = {
                    "reason": item.reason,
                    "requested": item.requested,
                    "first_available": item.first_available,
                    "epoch": item.epoch,
                }
                yield ServerSentEvent(
                    orjson.dumps(payload).decode(), event="reset", id=format_id(item.epoch, 0)
                )
    except FileNotFoundError as exc:
        raise StreamNotFound(name) from exc
