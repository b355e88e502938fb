"""A producer that waits for its iterator does not queue for a turn (``_ticks``): a live reader
is not held back behind busy streams, which still take turns (``test_turns``,
``test_coalescing_and_turns``, ``tests/e2e/test_responses_fairness.py``).

Loop iterations are counted exactly (``test_turns.CountingSelector``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from mianzhang import EventSourceResponse
from mianzhang._responses._ticks import loop_ticks
from mianzhang._responses._turns import loop_turns
from tests._support.asgi import http_scope
from tests.responses.test_turns import CountingSelector, next_iteration, run_counted

BUSY = 20
EVENTS = 8
ITEM = "x" * 1000


def test_the_count_moves_only_once_the_loop_went_round() -> None:
    async def main(selector: CountingSelector) -> None:
        ticks = loop_ticks()
        mark = ticks.mark()
        assert not ticks.passed(mark)
        assert ticks.mark() == mark  # the same iteration: one bump pending, no more
        await next_iteration(selector)
        assert ticks.passed(mark)
        assert loop_ticks() is ticks

    run_counted(main)


async def _never() -> Any:
    await asyncio.Event().wait()


def _busy_stream() -> Any:
    """A response over an endless generator that never waits, sent to a null ``send``."""

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"data: " + b"x" * 1000 + b"\n\n"

    async def send(message: Any) -> None:
        pass

    return EventSourceResponse(endless(), ping=0)(http_scope(), _never, send)


def test_a_live_reader_is_not_held_back_behind_busy_streams() -> None:
    async def main(selector: CountingSelector) -> list[int]:
        ready = asyncio.Event()
        delivered: asyncio.Queue[int] = asyncio.Queue()

        async def live() -> AsyncIterator[str]:
            for _ in range(EVENTS):
                await ready.wait()
                ready.clear()
                yield ITEM

        async def send(message: Any) -> None:
            if message["type"] == "http.response.body" and message["body"]:
                delivered.put_nowait(selector.iterations)

        busy = [asyncio.create_task(_busy_stream()) for _ in range(BUSY)]
        # a checkpoint every few items of the live stream, its buffer never full
        reader = asyncio.create_task(
            EventSourceResponse(live(), ping=0, max_buffer=3000)(http_scope(), _never, send)
        )
        try:
            while not loop_turns().contended:  # the busy streams queue for turns
                await next_iteration(selector)
            waits = []
            for _ in range(EVENTS):
                assert loop_turns().contended
                started = selector.iterations
                ready.set()
                waits.append(await delivered.get() - started)
            return waits
        finally:
            for task in [*busy, reader]:
                task.cancel()
            await asyncio.gather(*busy, reader, return_exceptions=True)

    waits = run_counted(main)
    # a few iterations each (waiting behind the busy streams would take one per stream)
    assert max(waits) <= 4 < BUSY, waits
