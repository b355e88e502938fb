"""Responses API events: order, sequence numbers, failure, cancellation, snapshot."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mianzhang.llm import (
    Cancelled,
    Chunk,
    Failed,
    Finished,
    InvalidLLMRequest,
    ResponsesEncoder,
    ResponseSnapshot,
    Started,
    Timings,
    Token,
    UpstreamProtocolError,
    Usage,
    responses_input_to_messages,
)

T = Timings(0.1, 0.5, 2)


def encoder() -> ResponsesEncoder:
    return ResponsesEncoder(response_id="resp_1", model="demo", created=5, background=True)


def decode(out: list[tuple[str, str]]) -> list[dict[str, Any]]:
    events = [orjson.loads(d) for _, d in out]
    assert [t for t, _ in out] == [e["type"] for e in events]
    return events


def test_a_completed_response_has_openai_event_order_and_dense_sequence_numbers() -> None:
    enc = encoder()
    out = []
    for e in [
        Started("demo", 5),
        Token(Chunk(text="Hi")),
        Token(Chunk(text=" there")),
        Finished("stop", Usage(3, 2), T, provider="demo", upstream_model="m", usage_reported=True),
    ]:
        out += enc.encode(e)
    events = decode(out)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(10))
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["background"] is True
    assert [e["delta"] for e in events if e["type"].endswith("delta")] == ["Hi", " there"]
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["id"] == "resp_1"
    assert done["output"][0]["content"][0]["text"] == "Hi there"
    assert done["usage"]["input_tokens"] == 3 and done["usage"]["output_tokens"] == 2
    assert events[6]["text"] == "Hi there"


@pytest.mark.parametrize(
    ("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_an_answer_cut_short_is_an_incomplete_response(finish: str, reason: str) -> None:
    enc = encoder()
    out = enc.encode(Started("demo", 5)) + enc.encode(Token(Chunk(text="Hi")))
    out += enc.encode(
        Finished(finish, Usage(3, 1), T, provider="demo", upstream_model="m", usage_reported=True)
    )
    events = decode(out)
    assert events[-1]["type"] == "response.incomplete"
    response = events[-1]["response"]
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": reason}
    assert response["output"][0]["status"] == "incomplete"
    assert response["output"][0]["content"][0]["text"] == "Hi"
    item_done = [e for e in events if e["type"] == "response.output_item.done"]
    assert item_done[0]["item"]["status"] == "incomplete"


def test_the_response_echoes_the_request_s_tools() -> None:
    tools = [{"type": "function", "name": "f", "parameters": None, "strict": True}]
    params = {"tools": tools, "tool_choice": "required", "parallel_tool_calls": False}
    enc = ResponsesEncoder(response_id="r", model="m", created=1, background=False, params=params)
    created = decode(enc.encode(Started("m", 1)))[0]["response"]
    assert created["tools"] == tools and created["tool_choice"] == "required"
    assert created["parallel_tool_calls"] is False


def test_failure_after_output_sends_error_then_response_failed() -> None:
    enc = encoder()
    out = enc.encode(Started("demo", 5)) + enc.encode(Token(Chunk(text="par")))
    out += enc.encode(Failed(UpstreamProtocolError("cut"), Usage(1, 1), T, partial=True))
    events = decode(out)
    types = [e["type"] for e in events]
    assert types[-5:] == [
        "error",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.failed",
    ]
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "par"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_failure_before_output_is_only_response_failed() -> None:
    enc = encoder()
    out = enc.encode(Started("demo", 5))
    out += enc.encode(Failed(UpstreamProtocolError("x"), Usage(), T, partial=False))
    assert [t for t, _ in out][-1] == "response.failed" and len(out) == 3


def test_cancellation_ends_with_status_cancelled() -> None:
    enc = encoder()
    enc.encode(Started("demo", 5))
    out = enc.encode(Cancelled("stop", Usage(1, 0), T, partial=False))
    last = orjson.loads(out[-1][1])
    assert last["type"] == "response.failed"
    assert last["response"]["status"] == "cancelled"
    assert last["response"]["error"]["code"] == "cancelled"
    assert enc.end() == []


def test_reasoning_and_tool_calls_are_output_items_of_their_own() -> None:
    enc = encoder()
    first = {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f"}}
    args = {"index": 0, "function": {"arguments": '{"x":'}}
    second = {"index": 1, "id": "call_b", "function": {"name": "g", "arguments": "{}"}}
    out = enc.encode(Started("demo", 5))
    out += enc.encode(Token(Chunk(reasoning="hm")))
    out += enc.encode(Token(Chunk(text="ok")))
    out += enc.encode(Token(Chunk(tool_calls=[first])))
    out += enc.encode(Token(Chunk(tool_calls=[args])))
    out += enc.encode(Token(Chunk(tool_calls=[{"index": 0, "function": {"arguments": "1}"}}])))
    out += enc.encode(Token(Chunk(tool_calls=[second])))
    out += enc.encode(
        Finished(
            "tool_calls", Usage(1, 1), T, provider="demo", upstream_model="m", usage_reported=True
        )
    )
    events = decode(out)
    kinds = ["reasoning", "message", "function_call", "function_call"]
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    assert [item["type"] for item in added] == kinds
    indexes = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    assert indexes == [0, 1, 2, 3]
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert deltas == ['{"x":', "1}", "{}"]
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [d["arguments"] for d in done] == ['{"x":1}', "{}"]
    final = events[-1]["response"]["output"]
    assert [item["type"] for item in final] == kinds
    assert final[0]["content"] == [{"type": "reasoning_text", "text": "hm"}]
    assert (final[2]["call_id"], final[2]["name"], final[2]["arguments"]) == (
        "call_a",
        "f",
        '{"x":1}',
    )
    assert all(item["status"] == "completed" for item in final)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_snapshot_rebuilds_the_response_in_progress_and_final() -> None:
    enc = encoder()
    out = enc.encode(Started("demo", 5)) + enc.encode(Token(Chunk(text="ab")))
    snap = ResponseSnapshot()
    for _, d in out:
        snap.apply(d)
    partial = snap.result()
    assert partial is not None and partial["status"] == "in_progress"
    assert partial["output"][0]["content"][0]["text"] == "ab"
    assert snap.last_sequence == len(out) - 1
    for _, d in enc.encode(
        Finished("stop", Usage(1, 1), T, provider="demo", upstream_model="m", usage_reported=False)
    ):
        snap.apply(d)
    final = snap.result()
    assert final is not None and final["status"] == "completed"
    assert ResponseSnapshot().result() is None


def test_input_conversion() -> None:
    assert responses_input_to_messages("hi", "be brief") == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    items = [
        {"role": "developer", "content": "sys"},
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
        },
    ]
    assert responses_input_to_messages(items, None) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "ab"},
    ]


def test_function_calls_and_their_outputs_become_tool_calls_and_tool_messages() -> None:
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a": 1}'}
    items = [
        {"role": "user", "content": "go"},
        {"type": "reasoning", "id": "rs_1", "summary": []},  # not sent back upstream
        {"role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
        call,
        {**call, "call_id": "c2", "id": "fc_2", "status": "completed"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {
            "type": "function_call_output",
            "call_id": "c2",
            "output": [{"type": "input_text", "text": "t"}, {"type": "input_text", "text": "wo"}],
        },
    ]
    function = {"name": "f", "arguments": '{"a": 1}'}
    assert responses_input_to_messages(items, None) == [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "calling",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": function},
                {"id": "c2", "type": "function", "function": function},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]
    alone = responses_input_to_messages([call], None)
    assert alone[0]["role"] == "assistant" and alone[0]["content"] is None


@pytest.mark.parametrize(
    "bad",
    [
        [],
        5,
        [{"role": "tool", "content": "x"}],
        [{"type": "function_call"}],
        [{"type": "function_call", "call_id": "c", "name": "f"}],
        [{"type": "function_call_output", "output": "x"}],
        [{"type": "function_call_output", "call_id": "c", "output": 5}],
        [{"type": "item_reference", "id": "x"}],
        [{"role": "user", "content": 3}],
    ],
)
def test_bad_input_is_rejected(bad: object) -> None:
    with pytest.raises(InvalidLLMRequest):
        responses_input_to_messages(bad, None)
