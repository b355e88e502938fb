"""Resuming an AG-UI run from the log: after any event (by its SSE id, or by the count of
events received) the resumed connection sends exactly ``agui_reopen`` of what the client got,
then the rest (``agui_reopen``'s own tests run that through ``HttpAgent``)."""

from __future__ import annotations

from typing import Any

import pytest

from mianzhang import SSEDecoder
from mianzhang.llm._agui_resume import agui_received, agui_resume_events
from mianzhang.llm._agui_surface import AGUISurface, agui_reopen
from mianzhang.llm._canonical import StartRecord, event_entry, start_entry, start_meta
from mianzhang.llm._reader import surface_events
from mianzhang.llm._surface import WireEvent
from mianzhang.llm._types import GenEvent, Started
from mianzhang.log import MemoryEventLog

from ._generations import cancelled, generate

AGUI = AGUISurface()
RUN = {"thread_id": "t-1", "run_id": "r-1"}
SCRIPT: list[Any] = [
    {"reasoning": ["Thinking ", "hard."]},
    {"words": "It is sunny."},
    {"tool_call": {"name": "get_weather", "id": "call_w", "arguments": {"city": "Paris"}}},
]


async def logged(log: MemoryEventLog, events: list[GenEvent], *, close: bool = True) -> None:
    started = events[0]
    assert isinstance(started, Started)
    await log.create("gen-1", meta=start_meta(StartRecord(started, "agui", RUN)))
    for entry in [start_entry(started, "agui", RUN), *map(event_entry, events[1:])]:
        await log.append("gen-1", entry.data, event=entry.event)
    if close:
        await log.close("gen-1")


async def read(items: Any) -> list[tuple[str | None, str]]:
    raw = b""
    async for item in items:
        raw += item if isinstance(item, bytes) else item.encode()
    return [(e.id, e.data) for e in SSEDecoder().decode(raw)]


def wire_of(events: list[tuple[str | None, str]]) -> list[WireEvent]:
    return [(None, data) for _, data in events]


@pytest.mark.parametrize("stopped", [False, True])
async def test_resume_after_any_event_is_reopen_then_the_rest(stopped: bool) -> None:
    events = await generate(SCRIPT)
    if stopped:
        events = cancelled(events, after=7)
    async with MemoryEventLog() as log:
        await logged(log, events)
        full = await read(surface_events(log, "gen-1", AGUI))
        assert all(ident for ident, _ in full)  # every AG-UI event has an id
        wire = wire_of(full)
        for p in range(1, len(full) + 1):
            expected = [data for _, data in agui_reopen(wire[:p]) + wire[p:]]
            by_id = await read(agui_resume_events(log, "gen-1", after=full[p - 1][0]))
            by_count = await read(agui_resume_events(log, "gen-1", count=p))
            assert [data for _, data in by_id] == expected, p
            assert [data for _, data in by_count] == expected, p
            # the events after the prelude carry their ids; the prelude none
            prelude = len(agui_reopen(wire[:p]))
            assert all(not i for i, _ in by_id[:prelude])
            assert [i for i, _ in by_id[prelude:]] == [i for i, _ in full[p:]]


async def test_received_of_a_live_run_and_of_unknown_points() -> None:
    events = await generate(SCRIPT)
    async with MemoryEventLog() as log:
        await logged(log, events[:4], close=False)  # still running
        received = await agui_received(log, "gen-1", count=3)
        assert len(received) == 3
        assert await agui_received(log, "gen-1") == []
        assert await agui_received(log, "gen-1", after="other-epoch-2") == []
        assert await agui_received(log, "missing", count=2) == []
