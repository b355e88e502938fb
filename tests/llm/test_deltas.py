"""Chunks for the part-based surfaces: single pieces, and tool calls rebuilt from OpenAI deltas
(started once named, untrusted fields ignored)."""

from __future__ import annotations

from mianzhang.llm._deltas import ToolCallDeltas, single_piece
from mianzhang.llm._types import Chunk


def test_a_call_starts_when_its_name_is_known_with_the_arguments_so_far() -> None:
    deltas = ToolCallDeltas("m-tool-")
    first = deltas.add({"index": 0, "function": {"arguments": '{"a"'}})
    assert first is not None and first[1:] == (False, "")
    started = deltas.add({"index": 0, "id": "late-id", "function": {"name": "f", "arguments": ":"}})
    assert started is not None
    call, now, text = started
    assert (call.id, call.name, now, text) == ("m-tool-0", "f", True, '{"a":')
    more = deltas.add({"index": 0, "function": {"arguments": "1}"}})
    assert more is not None and more[1:] == (False, "1}") and call.text == '{"a":1}'


def test_untrusted_deltas_are_ignored_field_by_field() -> None:
    deltas = ToolCallDeltas("p-")
    assert deltas.add("not an object") is None and not deltas
    added = deltas.add({"index": "3", "id": 7, "function": {"name": ["x"], "arguments": 1}})
    assert added is not None and added[0].id == "p-0" and added[1:] == (False, "")
    named = deltas.add({"index": 0, "function": "nope"})
    assert named is not None and named[1] is False
    [unnamed] = deltas.unstarted()
    assert (unnamed.name, unnamed.started) == ("unknown", True)
    assert deltas.unstarted() == [] and [c.id for c in deltas.calls()] == ["p-0"]


def test_calls_keep_their_index_order() -> None:
    deltas = ToolCallDeltas("p-")
    for index in (2, 0, 1):
        deltas.add({"index": index, "id": f"c{index}", "function": {"name": "f"}})
    assert [c.id for c in deltas.calls()] == ["c0", "c1", "c2"]


def test_single_piece_only_for_chunks_that_continue_one_kind() -> None:
    assert single_piece(Chunk(text="a", finish_reason="stop"), "text") == "a"
    assert single_piece(Chunk(text="a"), "reasoning") == ""
    assert single_piece(Chunk(reasoning="r"), "reasoning") == "r"
    assert single_piece(Chunk(text="a", reasoning="r"), "text") == ""
    assert single_piece(Chunk(text="a", tool_calls=[{"index": 0}]), "text") == ""
