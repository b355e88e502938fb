"""Small helpers for event-log tests: bounded waiting, never fixed sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from mianzhang.log import LogEvent, MemoryEventLog, Reset, StreamState, parse_id
from tests._support.wait import eventually

__all__ = ["Item", "SlowCloseLog", "drain", "eventually", "seq_of", "seqs", "take"]

Item = LogEvent | Reset


async def drain(iterator: AsyncIterator[Item], *, timeout: float = 20.0) -> list[Item]:
    """Everything ``iterator`` yields until it ends (bounded)."""

    async with asyncio.timeout(timeout):
        return [item async for item in iterator]


async def take(iterator: AsyncIterator[Item], n: int, *, timeout: float = 20.0) -> list[Item]:
    """The next ``n`` items of ``iterator`` (bounded); the iterator stays open."""

    async with asyncio.timeout(timeout):
        return [await anext(iterator) for _ in range(n)]


def seqs(items: list[Item]) -> list[int]:
    return [item.seq for item in items if isinstance(item, LogEvent)]


def seq_of(event_id: str) -> int:
    parsed = parse_id(event_id)
    assert parsed is not None, event_id
    return parsed[1]


class SlowCloseLog(MemoryEventLog):
    """A memory log whose ``close`` of stream ``s`` sets ``closing`` and waits for ``hold``:
    a slow backend while the producer runner ends the stream (a second cancellation, a
    shutdown, can arrive meanwhile)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = asyncio.Event()
        self.closing = asyncio.Event()

    async def close(self, stream: str, *, state: StreamState = StreamState.CLOSED) -> None:
        if stream == "s":
            self.closing.set()
            await self.hold.wait()
        await super().close(stream, state=state)
