"""The generation reader: group ids, live following, resume, resets, ends it must still give
(no terminal event, stopped before the start, a crashed producer), ``starting_after``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from mianzhang import SSEDecoder, StreamNotFound
from mianzhang.llm import (
    Cancelled,
    Chunk,
    Finished,
    GenEvent,
    Started,
    Surface,
    Timings,
    Token,
    Usage,
    surface_events,
)
from mianzhang.llm._canonical import StartRecord, event_entry, start_entry, start_meta
from mianzhang.llm._chat_format import CHAT
from mianzhang.llm._native_format import NATIVE
from mianzhang.llm._reader import ResumePoint, resume_point
from mianzhang.llm._responses_format import RESPONSES
from mianzhang.log import MemoryEventLog, StreamState
from mianzhang.log.serve import ServeStatistics

S = "gen-1"
STARTED = Started("m", 1700000000, "demo", "d")
T = Timings(0.1, 0.5, 2)
FINISHED = Finished(
    "stop", Usage(2, 2), T, provider="demo", upstream_model="m", usage_reported=True
)
TEXT: list[GenEvent] = [Token(Chunk(text="Hel"), 0.1), Token(Chunk(text="lo"), 0.2)]


@pytest.fixture
async def log() -> AsyncIterator[MemoryEventLog]:
    async with MemoryEventLog() as memory:
        yield memory


async def create(log: MemoryEventLog, surface: str = "native", **kwargs: Any) -> None:
    record = StartRecord(STARTED, surface, {})
    await log.create(S, meta=start_meta(record), **kwargs)


async def append(log: MemoryEventLog, *events: GenEvent, surface: str = "native") -> list[str]:
    ids = []
    for event in events:
        entry = (
            start_entry(event, surface, {}) if isinstance(event, Started) else event_entry(event)
        )
        ids.append(await log.append(S, entry.data, event=entry.event))
    return ids


async def read(
    log: MemoryEventLog, surface: Surface, after: str | None = None, **kwargs: Any
) -> list[Any]:
    raw = b""
    async with asyncio.timeout(10):
        async for item in surface_events(log, S, surface, after=after, **kwargs):
            raw += item if isinstance(item, bytes) else item.encode()
    return SSEDecoder().decode(raw)


def test_resume_points_of_plain_group_and_foreign_ids() -> None:
    assert resume_point(None) == ResumePoint(None)
    assert resume_point("ab12-7") == ResumePoint("ab12-7")
    assert resume_point("ab12-7.0") == ResumePoint("ab12-6", 7, 1)
    assert resume_point("a-b-3.2") == ResumePoint("a-b-2", 3, 3)
    for other in ("x", "ab12-7.", "ab12-.1", "ab12-0.1", "ab12-7.x", "-7.1", "ab12-٣.1"):
        assert resume_point(other) == ResumePoint(other), other


async def test_the_last_event_of_a_group_has_the_log_id_the_others_a_group_id(
    log: MemoryEventLog,
) -> None:
    await create(log, "responses")
    start, first, second, end = await append(log, STARTED, *TEXT, FINISHED, surface="responses")
    await log.close(S)
    events = await read(log, RESPONSES)
    assert [e.id for e in events] == [
        f"{start}.0",
        start,  # response.created, response.in_progress
        f"{first}.0",
        f"{first}.1",
        first,  # output_item.added, content_part.added, delta
        second,
        f"{end}.0",
        f"{end}.1",
        f"{end}.2",
        end,  # text done, part done, item done, completed
    ]
    assert [orjson.loads(e.data)["sequence_number"] for e in events] == list(range(10))


async def test_a_live_reader_ends_after_the_terminal_event_even_if_the_stream_stays_open(
    log: MemoryEventLog,
) -> None:
    await create(log)
    await append(log, STARTED)
    seen: list[str] = []

    async def reader() -> None:
        async for item in surface_events(log, S, NATIVE):
            assert isinstance(item, bytes)
            seen.extend(e.event for e in SSEDecoder().decode(item))

    task = asyncio.create_task(reader())
    try:
        await append(log, *TEXT, FINISHED, Cancelled("stopped", Usage(), T, partial=True))
        async with asyncio.timeout(10):
            await task  # the stream is still open: the reader ends on its own
    finally:
        task.cancel()
    assert seen == ["start", "content", "content", "complete"]  # what follows is ignored


async def test_ids_from_another_epoch_or_unparseable_get_a_reset_then_everything(
    log: MemoryEventLog,
) -> None:
    await create(log)
    await append(log, STARTED, *TEXT, FINISHED)
    await log.close(S)
    full = await read(log, NATIVE)
    stats = ServeStatistics()
    for asked, reason in [("zz-2.0", "epoch"), ("zz-2", "epoch"), ("nonsense", "invalid_id")]:
        events = await read(log, NATIVE, asked, stats=stats)
        assert events[0].event == "reset"
        body = orjson.loads(events[0].data)
        assert (body["reason"], body["requested"]) == (reason, asked)
        assert [(e.id, e.data) for e in events[1:]] == [(e.id, e.data) for e in full]
    assert stats.resets == {"epoch": 2, "invalid_id": 1}


async def test_history_trimmed_away_gives_a_reset_and_the_start_from_the_metadata(
    log: MemoryEventLog,
) -> None:
    await create(log, max_events=2)
    tokens = [Token(Chunk(text=f"t{i}"), 0.1 * i) for i in range(4)]
    ids = await append(log, STARTED, *tokens, FINISHED)
    await log.close(S)
    events = await read(log, NATIVE)
    assert events[0].event == "reset" and orjson.loads(events[0].data)["reason"] == "retention"
    assert [e.event for e in events[1:]] == ["start", "content", "complete"]
    assert [e.id for e in events[1:]] == [f"{ids[-2]}.0", ids[-2], ids[-1]]
    assert orjson.loads(events[1].data)["description"] == "d"  # from the stream's metadata


async def test_a_generation_stopped_before_its_start_still_reads_start_and_end(
    log: MemoryEventLog,
) -> None:
    await create(log, "chat")
    (only,) = await append(log, Cancelled("stopped", Usage(), Timings(None, 0.0, 0), False))
    await log.close(S, state=StreamState.CANCELLED)
    events = await read(log, RESPONSES)
    names = ["response.created", "response.in_progress", "response.failed"]
    assert [e.event for e in events] == names
    assert events[-1].id == only
    chat = await read(log, CHAT)
    assert orjson.loads(chat[0].data)["error"]["code"] == "cancelled"
    assert chat[-1].data == "[DONE]"


async def test_a_stream_ended_without_terminal_event_ends_in_the_cancelled_shape(
    log: MemoryEventLog,
) -> None:
    await create(log)
    ids = await append(log, STARTED, *TEXT)
    await log.close(S, state=StreamState.CANCELLED)  # its owner died; stopped from elsewhere
    events = await read(log, NATIVE)
    assert [e.event for e in events] == ["start", "content", "content", "error"]
    body = orjson.loads(events[-1].data)
    assert body["error"]["code"] == "cancelled" and "interrupted" in body["error"]["message"]
    assert events[-1].id == ids[-1]  # no id of its own: the client's last id stays the last one
    again = await read(log, NATIVE, ids[-1])
    assert [(e.event, e.data) for e in again] == [("error", events[-1].data)]


async def test_a_crashed_producers_error_event_ends_in_the_failure_shape(
    log: MemoryEventLog,
) -> None:
    await create(log, "chat")
    await append(log, STARTED, *TEXT, surface="chat")
    await log.append(S, '{"type":"internal_error","message":"boom"}', event="error")
    await log.close(S)
    events = await read(log, CHAT)
    assert orjson.loads(events[-2].data)["error"]["message"] == "boom"
    assert events[-1].data == "[DONE]"


async def test_skip_drops_the_first_wire_events_for_starting_after(log: MemoryEventLog) -> None:
    await create(log, "responses")
    await append(log, STARTED, *TEXT, FINISHED, surface="responses")
    await log.close(S)
    full = await read(log, RESPONSES)
    for n in range(len(full)):
        rest = await read(log, RESPONSES, skip=n + 1)  # starting_after=n
        assert [(e.id, e.data) for e in rest] == [(e.id, e.data) for e in full[n + 1 :]]


async def test_resuming_after_the_end_gives_nothing(log: MemoryEventLog) -> None:
    await create(log)
    ids = await append(log, STARTED, *TEXT, FINISHED)
    await log.close(S)
    assert await read(log, NATIVE, ids[-1]) == []


async def test_unknown_streams_and_streams_that_are_not_generations(log: MemoryEventLog) -> None:
    with pytest.raises(StreamNotFound):
        await read(log, CHAT)
    await log.append("plain", "hello")
    await log.close("plain")
    with pytest.raises(ValueError, match="not a generation"):
        async for _ in surface_events(log, "plain", CHAT):
            pass
