"""A whole generation read from the log (``stream: false`` answers): every gateway event in
order until the terminal one; a stream that ended without one ends ``interrupted``."""

from __future__ import annotations

import asyncio

import pytest

from mianzhang import StreamNotFound
from mianzhang.llm import Cancelled, Chunk, Finished, GenEvent, Started, Timings, Token, Usage
from mianzhang.llm._canonical import StartRecord, event_entry, start_entry, start_meta
from mianzhang.llm._collect import collect
from mianzhang.log import MemoryEventLog

STARTED = Started("m", 1700000000, "scripted", "")
DONE = Finished("stop", Usage(1, 2), Timings(0.1, 0.2, 2), "scripted", "m", usage_reported=True)


async def write(log: MemoryEventLog, stream: str, events: list[GenEvent]) -> None:
    await log.create(stream, meta=start_meta(StartRecord(STARTED, "anthropic", {})))
    entries = [start_entry(STARTED, "anthropic", {}), *(event_entry(e) for e in events)]
    for entry in entries:
        await log.append(stream, entry.data, event=entry.event)


async def test_every_event_in_order_until_the_terminal_one() -> None:
    async with MemoryEventLog() as log:
        got: list[GenEvent] = []
        tokens = [Token(Chunk(text="a"), 0.1), Token(Chunk(text="b"), 0.2)]
        await write(log, "s", tokens)
        reading = asyncio.ensure_future(collect(log, "s", got.append))
        await write_rest(log, "s")
        async with asyncio.timeout(10):
            await reading
        assert got == [STARTED, *tokens, DONE]


async def write_rest(log: MemoryEventLog, stream: str) -> None:
    entry = event_entry(DONE)
    await log.append(stream, entry.data, event=entry.event)
    await log.append(stream, "ignored after the end")


async def test_a_stream_closed_without_a_terminal_event_ends_interrupted() -> None:
    async with MemoryEventLog() as log:
        got: list[GenEvent] = []
        await write(log, "s", [Token(Chunk(text="a"), 0.1)])
        await log.close("s")
        await collect(log, "s", got.append)
        assert isinstance(got[-1], Cancelled) and got[-1].reason == "interrupted"
        with pytest.raises(StreamNotFound):
            await collect(log, "nope", got.append)
