"""The server's UIMessage of a generation equals the one the real ``ai`` package builds from
the same stream (finished, failed, stopped, tool input that is not JSON), and
:func:`final_ui_message` reads it from the log, also for a stream cut without an end."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mianzhang.llm._canonical import StartRecord, event_entry, start_entry, start_meta
from mianzhang.llm._types import GenEvent, Started
from mianzhang.llm._ui_fold import UIMessageFold, final_ui_message, merge_metadata
from mianzhang.llm._ui_surface import UISurface
from mianzhang.log import MemoryEventLog
from tests._support.node import run_node

from ._generations import cancelled, encode, generate, payloads, sse

UI = UISurface()
SCRIPT: list[Any] = [
    {"reasoning": ["Thinking ", "hard."]},
    {"words": "It is sunny."},
    {"tool_call": {"name": "get_weather", "id": "call_w", "arguments": {"city": "Paris"}}},
]
BAD_TOOL: list[Any] = [
    {"text": "x"},
    {"tool_call": {"name": "broken", "id": "call_b", "arguments": '{"city": "Par'}},
    {"words": "and more text"},
]
LONG: list[Any] = [{"words": " ".join(f"w{i}" for i in range(40))}]  # with data-progress


def fold(events: list[GenEvent]) -> dict[str, Any]:
    builder = UIMessageFold()
    for chunk in payloads(encode(UI, events))[:-1]:
        builder.add(chunk)
    return builder.message


async def cases() -> dict[str, list[GenEvent]]:
    full = await generate(SCRIPT)
    return {
        "finished": full,
        "failed": await generate([{"words": "half an"}, {"error": {"status": 502}}]),
        "stopped": cancelled(full, after=6),
        "bad-tool-input": await generate(BAD_TOOL),
        "progress": await generate(LONG),
    }


async def test_the_server_builds_the_message_the_ai_package_builds() -> None:
    for name, events in (await cases()).items():
        result = run_node("ai_sdk.mjs", {"mode": "read", "sse": sse(encode(UI, events))})
        assert fold(events) == result["message"], name


def test_data_parts_fold_like_the_sdk() -> None:
    """Not written by the ``ui`` surface except as transient progress, but a data part of
    any kind folds as ``ai`` folds it: transient ones dropped, the same type and id
    replaced in place, the rest added."""
    wire: list[tuple[str | None, str]] = [
        (None, orjson.dumps(chunk).decode())
        for chunk in [
            {"type": "start", "messageId": "m1"},
            {"type": "data-status", "id": "s", "data": {"step": 1}},
            {"type": "text-start", "id": "t"},
            {"type": "text-delta", "id": "t", "delta": "hi"},
            {"type": "data-status", "id": "s", "data": {"step": 2}},
            {"type": "data-status", "id": "other", "data": 1, "transient": False},
            {"type": "data-note", "id": "s", "data": "another type"},
            {"type": "data-note", "data": "no id"},
            {"type": "data-note", "data": "no id"},
            {"type": "data-status", "id": "s", "data": {"step": 3}, "transient": True},
            {"type": "text-end", "id": "t"},
        ]
    ]
    builder = UIMessageFold()
    for chunk in payloads(wire):
        builder.add(chunk)
    result = run_node("ai_sdk.mjs", {"mode": "read", "sse": sse([*wire, (None, "[DONE]")])})
    assert result["errors"] == []
    assert builder.message == result["message"]
    assert [p.get("data") for p in builder.message["parts"]] == [
        {"step": 2},
        None,
        1,
        "another type",
        "no id",
        "no id",
    ]


def test_metadata_merges_like_the_sdk() -> None:
    base = {"a": {"x": 1, "y": [1]}, "b": 1}
    assert merge_metadata(base, {"a": {"y": [2], "z": 3}, "c": None}) == {
        "a": {"x": 1, "y": [2], "z": 3},
        "b": 1,
        "c": None,
    }
    assert merge_metadata(None, {"a": 1}) == {"a": 1}
    assert merge_metadata({"a": 1}, None) == {"a": 1}
    assert merge_metadata({"a": 1}, {"__proto__": {"p": 1}}) == {"a": 1}


async def _logged(log: MemoryEventLog, events: list[GenEvent], *, close: bool) -> None:
    started = events[0]
    assert isinstance(started, Started)
    record = StartRecord(started, "ui", {"chat_id": "c1"})
    await log.create("gen-1", meta=start_meta(record))
    for entry in [start_entry(started, "ui", {"chat_id": "c1"}), *map(event_entry, events[1:])]:
        await log.append("gen-1", entry.data, event=entry.event)
    if close:
        await log.close("gen-1")


@pytest.mark.parametrize("name", ["finished", "failed", "stopped"])
async def test_final_message_from_the_log(name: str) -> None:
    events = (await cases())[name]
    async with MemoryEventLog() as log:
        await _logged(log, events, close=True)
        message = await final_ui_message(log, "gen-1")
    assert message == fold(events)
    assert message is not None and message["id"] == "gen-1"
    status = message["metadata"].get("status")
    assert status == {"finished": None, "failed": "failed", "stopped": "stopped"}[name]


async def test_a_stream_cut_without_an_end_reads_as_interrupted() -> None:
    events = (await generate(SCRIPT))[:5]
    async with MemoryEventLog() as log:
        await _logged(log, events, close=False)
        message = await final_ui_message(log, "gen-1")
        assert await final_ui_message(log, "missing") is None
    assert message is not None
    assert message["metadata"]["status"] == "stopped"
    assert message["metadata"]["stopReason"] == "interrupted"
    assert all(p.get("state", "done") == "done" for p in message["parts"])
