"""``tail_events``: lines as SSE events with offset ids; ``reset`` ids point at the start of
the current file; a missing file is ``StreamNotFound`` before anything is sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from mianzhang import ServerSentEvent, StreamNotFound
from mianzhang.tails import FileTail, tail_events


async def take(it: AsyncIterator[ServerSentEvent], n: int) -> list[ServerSentEvent]:
    out: list[ServerSentEvent] = []
    async with asyncio.timeout(5):
        while len(out) < n:
            out.append(await anext(it))
    return out


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.log"
    path.write_text("one\ntwo\nthree\n")
    return path


async def test_lines_become_events_whose_ids_resume_after_them(log_file: Path) -> None:
    tail = FileTail(log_file, poll_interval=0.01)
    it = tail_events(tail, "app", None, last_lines=2)
    try:
        got = await take(it, 2)
    finally:
        await it.aclose()  # type: ignore[attr-defined]
    assert [e.data for e in got] == ["two", "three"]
    assert all(e.event is None for e in got)
    assert got[0].id is not None and got[0].id.endswith("-8")  # after "one\ntwo\n"
    it = tail_events(tail, "app", got[0].id, last_lines=2)
    try:
        assert [e.data for e in await take(it, 1)] == ["three"]
    finally:
        await it.aclose()  # type: ignore[attr-defined]


async def test_reset_event_id_is_the_start_of_the_current_file(log_file: Path) -> None:
    tail = FileTail(log_file, poll_interval=0.01)
    it = tail_events(tail, "app", "not-an-id", last_lines=2)
    try:
        reset, first = await take(it, 2)
    finally:
        await it.aclose()  # type: ignore[attr-defined]
    assert reset.event == "reset"
    payload = orjson.loads(reset.data)
    assert payload["reason"] == "invalid_id" and payload["requested"] == "not-an-id"
    assert reset.id == f"{payload['epoch']}-0"
    assert first.data == "one"  # from the start of the file
    # resuming after the reset's id reads the file from its start, with no second reset
    it = tail_events(tail, "app", reset.id, last_lines=2)
    try:
        assert [e.data for e in await take(it, 1)] == ["one"]
    finally:
        await it.aclose()  # type: ignore[attr-defined]


async def test_a_missing_file_is_stream_not_found(tmp_path: Path) -> None:
    it = tail_events(FileTail(tmp_path / "nope.log"), "nope", None, last_lines=1)
    with pytest.raises(StreamNotFound):
        await anext(it)
