"""A generation as log entries: one wire format's events, ready to append to a stream.

Each format (chat completion chunks, Responses API events, native UI events) is written to
the log exactly as it goes on the wire, so any instance serves a resume by copying the log.
:func:`log_entries` runs a generation through a format; :meth:`StreamFormat.cancelled` gives
the closing entries of a generation that was stopped (written by whoever stops it).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Protocol

import orjson

from .._errors import GenerationCancelled
from ..log import LogEntry
from ._chat_format import DONE, ChatChunkEncoder
from ._gateway import Generation
from ._native_format import NativeEncoder
from ._openai_errors import error_payload
from ._responses_format import ResponsesEncoder
from ._types import GenEvent

__all__ = [
    "ChatFormat",
    "LogEntry",
    "NativeFormat",
    "ResponsesFormat",
    "StreamFormat",
    "log_entries",
]


class StreamFormat(Protocol):
    """A wire format for one generation's stream."""

    def entries(self, event: GenEvent) -> list[LogEntry]: ...

    def cancelled(self, generation: Generation, reason: str) -> list[LogEntry]: ...


class ChatFormat:
    """``chat.completion.chunk`` payloads (no event names), ``[DONE]`` last."""

    def __init__(self, encoder: ChatChunkEncoder) -> None:
        self.encoder = encoder

    def entries(self, event: GenEvent) -> list[LogEntry]:
        return [LogEntry(data) for data in self.encoder.encode(event)]

    def cancelled(self, generation: Generation, reason: str) -> list[LogEntry]:
        payload = orjson.dumps(error_payload(GenerationCancelled(reason))).decode()
        return [LogEntry(payload), LogEntry(DONE)]


class ResponsesFormat:
    """Responses API events, named by their ``type``."""

    def __init__(self, encoder: ResponsesEncoder) -> None:
        self.encoder = encoder

    def entries(self, event: GenEvent) -> list[LogEntry]:
        return [LogEntry(d, t) for t, d in self.encoder.encode(event)]

    def cancelled(self, generation: Generation, reason: str) -> list[LogEntry]:
        out = self.encoder.failed(GenerationCancelled(reason), generation.usage, status="cancelled")
        return [LogEntry(d, t) for t, d in out]


class NativeFormat:
    """Native UI events: ``start``, ``content``, ``progress``, ``error``, ``complete``."""

    def __init__(self, encoder: NativeEncoder) -> None:
        self.encoder = encoder

    def entries(self, event: GenEvent) -> list[LogEntry]:
        return [LogEntry(d, n) for n, d in self.encoder.encode(event)]

    def cancelled(self, generation: Generation, reason: str) -> list[LogEntry]:
        out = self.encoder.failed(
            GenerationCancelled(reason),
            generation.usage,
            generation.timings(),
            partial=generation.output_tokens > 0,
        )
        return [LogEntry(d, n) for n, d in out]


async def log_entries(generation: Generation, fmt: StreamFormat) -> AsyncGenerator[LogEntry, None]:
    """The entries of ``generation`` in ``fmt``, in order, ending with the format's last event.

    Closing this iterator closes the generation (and so the upstream request).
    """
    async with aclosing(generation.events()) as events:
        async for event in events:
            for entry in fmt.entries(event):
                yield entry
