"""Bounded memory: at most ``max_buffer`` bytes (plus one item) produced and not yet accepted
by ``send``; a reader that stops reading stalls the iterator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import anyio.to_thread
import pytest

from mianzhang import EventSourceResponse, TextStreamResponse
from tests._support.wait import eventually
from tests.responses._peer import TIMEOUT, Cleanup, FakeClient, streaming


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_a_stalled_send_stalls_the_generator_within_max_buffer(kind: str) -> None:
    item = b"data: " + b"x" * 92 + b"\n\n"  # 100 bytes
    max_buffer = 1000
    cleanup = Cleanup()

    async def agen() -> AsyncIterator[bytes]:
        try:
            while True:
                cleanup.produced += 1
                yield item
        finally:
            cleanup.done.set()

    def sgen() -> Iterator[bytes]:
        try:
            while True:
                cleanup.produced += 1
                yield item
        finally:
            cleanup.done.set()

    client = FakeClient()
    client.gate = asyncio.Event()  # the reader stops reading: body sends never complete
    response = EventSourceResponse(
        agen() if kind == "async" else sgen(), ping=0, max_buffer=max_buffer, send_timeout=None
    )
    async with streaming(response, client) as task:
        await client.wait_for(lambda: client.blocked_sends == 1)
        if kind == "async":
            # The generator never awaits: the producer only ever stops at the buffer bound, so
            # once this task runs again the producer is parked there.
            for _ in range(50):
                await asyncio.sleep(0)
        else:
            # Thread steps take real time: wait until the buffer is full, then watch a window
            # of 50 round trips through the thread pool the generator is stepped in, in which
            # an unbounded producer would make about 50 more items.
            await eventually(lambda: cleanup.produced >= max_buffer // len(item), timeout=TIMEOUT)
            for _ in range(50):
                await anyio.to_thread.run_sync(lambda: None)
        produced = cleanup.produced
        for _ in range(50):
            await asyncio.sleep(0)
        assert cleanup.produced == produced  # stalled, not advancing
        assert produced * len(item) <= max_buffer + len(item)
        assert produced >= max_buffer // len(item)  # it did fill the buffer
        # The peer goes away while the send is still blocked: the generator is closed at once.
        client.disconnect()
        await asyncio.to_thread(cleanup.done.wait, TIMEOUT)
        assert cleanup.done.is_set()
        assert not task.done()  # (the send is still blocked: the generator did not wait for it)
        client.gate.set()
        await task
    assert not client.ended


async def test_bytes_in_flight_count_against_the_bound() -> None:
    """While one chunk is in a blocked send, the producer may only add what fits beside it."""
    max_buffer = 1000
    count = 0

    async def gen() -> AsyncIterator[bytes]:
        nonlocal count
        while True:
            count += 1
            yield b"x" * 99 + b"\n"

    client = FakeClient()
    client.gate = asyncio.Event()
    response = TextStreamResponse(gen(), max_buffer=max_buffer, send_timeout=None)
    async with streaming(response, client) as task:
        await client.wait_for(lambda: client.blocked_sends == 1)
        for _ in range(20):
            await asyncio.sleep(0)
        assert count * 100 <= max_buffer + 100
        seen = count
        client.gate.set()  # let exactly the sends through, then stall again
        client.gate = asyncio.Event()
        await client.wait_for(lambda: client.blocked_sends == 2)
        for _ in range(20):
            await asyncio.sleep(0)
        sent = len(client.body)
        assert (count * 100 - sent) <= max_buffer + 100  # unsent bytes stay bounded
        assert count > seen
        client.disconnect()
        client.gate.set()
        await task
