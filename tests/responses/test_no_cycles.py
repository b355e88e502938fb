"""A stream that ends leaves nothing to the cycle collector: everything it made is freed by
reference counting as it ends, so a server that drops thousands of connections does not grow
between full collections (bench/soak.py found the cancelled producer task keeping its
``CancelledError``, whose traceback held the producer that held the task)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from mianzhang import EventSourceResponse, ServerSentEvent
from mianzhang.log import MemoryEventLog
from mianzhang.log.serve import log_events
from tests.responses._peer import Cleanup, FakeClient, endless, streaming


@pytest.fixture
def collector_off() -> Iterator[None]:
    """The cycle collector off (what it would free is what the test counts), back on after."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _disconnect_after_first_bytes(response: EventSourceResponse) -> None:
    client = FakeClient()
    async with streaming(response, client) as task:
        await client.wait_for(lambda: len(client.body) > 0)
        client.disconnect()
        await task


async def _read_to_the_end(response: EventSourceResponse) -> None:
    client = FakeClient()
    async with streaming(response, client) as task:
        await task
    assert client.ended


async def _finite() -> AsyncIterator[ServerSentEvent]:
    for i in range(3):
        yield ServerSentEvent(str(i))


async def _log_stream(log: MemoryEventLog) -> str:
    await log.create("s")
    await log.append("s", "first")
    return "s"


@pytest.mark.usefixtures("collector_off")
@pytest.mark.parametrize("ending", ["disconnect", "end"])
async def test_a_stream_that_ends_leaves_no_garbage_cycles(ending: str) -> None:
    run: Callable[[EventSourceResponse], Awaitable[None]]
    make: Callable[[], AsyncIterator[object]]
    if ending == "disconnect":
        run, make = _disconnect_after_first_bytes, lambda: endless(Cleanup())
    else:
        run, make = _read_to_the_end, _finite
    for _ in range(3):  # warm-up: caches, interned strings, lazily built tables
        await run(EventSourceResponse(make()))
    gc.collect()
    for _ in range(20):
        await run(EventSourceResponse(make()))
    assert gc.collect() == 0


@pytest.mark.usefixtures("collector_off")
async def test_a_log_reader_that_disconnects_leaves_no_garbage_cycles() -> None:
    async with MemoryEventLog() as log:
        stream = await _log_stream(log)
        for _ in range(3):
            await _disconnect_after_first_bytes(EventSourceResponse(log_events(log, stream)))
        gc.collect()
        for _ in range(20):
            await _disconnect_after_first_bytes(EventSourceResponse(log_events(log, stream)))
        assert gc.collect() == 0
