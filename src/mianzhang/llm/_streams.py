"""A generation as log entries: its gateway events in the canonical form (``_canonical.py``).

One LLM token's way from the provider to the socket, file by file:

1. ``_openai.py`` / ``_demo.py`` / ``_local.py`` — the provider yields a :class:`Chunk`;
2. ``_gateway.py`` — :meth:`Generation.events` wraps it in a :class:`Token` (retries, timeouts,
   usage, metrics);
3. this module — :func:`generation_entries` serializes it as a ``gen.token`` log entry
   (``_canonical.py``);
4. ``log/_producers.py`` — the :class:`~mianzhang.log.ProducerRunner` appends it to the
   generation's stream (``closing`` writes ``gen.cancelled`` on a stop, ``on_end`` charges the
   token budget);
5. ``log/memory.py`` or ``log/redis/`` — the log stores it and wakes the followers;
6. ``_reader.py`` — each reader parses it and runs it through a fresh encoder of the surface it
   asked for (``_chat_format.py``, ``_responses_format.py``, ``_native_format.py``, ...), giving
   each wire event an SSE id;
7. ``log/serve.py`` :meth:`StreamHost.response` and ``_responses`` — the SSE response writes it
   to the socket (ping, send timeout, shutdown).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from .._errors import GenerationLost
from ..log import LogEntry
from ..log._protocol import PRODUCER_LOST
from ._canonical import event_entry, start_entry, token_entry
from ._gateway import Generation
from ._types import Cancelled, Failed, Started, Token

__all__ = ["cancelled_entries", "generation_entries"]


async def generation_entries(
    generation: Generation, surface: str, options: Mapping[str, Any]
) -> AsyncGenerator[LogEntry, None]:
    """The log entries of ``generation``, in order: ``gen.start`` (with the home ``surface``
    and its ``options``), the tokens, then ``gen.finish`` or ``gen.error``.

    Closing this iterator closes the generation (and so the upstream request). A cancellation
    thrown in (the runner's stop, abandonment or shutdown) is noted as the generation's
    ``cancel_reason`` before it is closed; the ``gen.cancelled`` entry is the runner's to write
    (:func:`cancelled_entries`).
    """
    events = generation.events()
    try:
        async for event in events:
            if type(event) is Token:  # the hot path
                yield token_entry(event)
            elif isinstance(event, Started):
                yield start_entry(event, surface, options)
            else:
                yield event_entry(event)
    except asyncio.CancelledError as exc:
        generation.note_cancel(exc)  # before the generation is closed: the metrics label
        raise
    finally:
        await events.aclose()


def cancelled_entries(generation: Generation, reason: str) -> list[LogEntry]:
    """The ``gen.cancelled`` entry closing ``generation``'s stream after a stop (``reason``:
    ``stopped``, ``abandoned``, ``shutdown``), with the usage and timings so far.

    For ``producer_lost`` (asked once when the generation starts: the entries its lease keeps
    in case this instance dies) a ``gen.error`` of :class:`~mianzhang.llm.GenerationLost` instead:
    every surface renders it as its own error shape (type ``producer_lost``). Its usage and
    timings are those known at the start (zero): the dead instance took the rest with it."""
    usage, timings = generation.usage, generation.timings()
    if reason == PRODUCER_LOST:
        return [event_entry(Failed(GenerationLost(), usage, timings, partial=False))]
    event = Cancelled(reason, usage, timings, partial=generation.output_tokens > 0)
    return [event_entry(event)]
