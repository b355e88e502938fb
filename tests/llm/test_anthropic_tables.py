"""The Anthropic <-> gateway translation tables, tested both ways: each table against its
inverse and the SDK's vocabularies, requests OpenAI -> Anthropic -> OpenAI and Anthropic ->
OpenAI -> Anthropic, and streams Anthropic -> chunks -> the ``anthropic`` surface (the same
content and stop reason, read by the real SDK)."""

from __future__ import annotations

import copy
from typing import Any, get_args

import pytest
from anthropic.types import Message, StopReason

from mianzhang.llm import ChatRequest, Chunk, Started, Token, Usage
from mianzhang.llm._anthropic_body import messages_body
from mianzhang.llm._anthropic_convert import chat_request
from mianzhang.llm._anthropic_requests import parse_messages
from mianzhang.llm._anthropic_stream import MessagesStreamParser
from mianzhang.llm._anthropic_tables import (
    EFFORT_BUDGETS,
    ERROR_STATUSES,
    ERROR_TYPES,
    FINISH_REASONS,
    OPENAI_PARTS,
    OPENAI_TOOL_CHOICES,
    STOP_REASONS,
    STREAM_BLOCKS,
    TOOL_CHOICES,
    USER_BLOCKS,
    effort_for_budget,
    error_type_for_status,
    finish_reason_for,
    status_for_error_type,
    stop_reason_for,
    upstream_status_for,
)
from mianzhang.llm._types import GenEvent

from ._anthropic_fixtures import STREAMS, Event, sse
from ._anthropic_sdk import encode_all, finished, sdk_final_message


# -- the tables against their inverses --------------------------------------------------------
def test_every_stop_reason_the_sdk_knows_has_a_finish_reason() -> None:
    assert set(get_args(StopReason)) <= set(FINISH_REASONS)


@pytest.mark.parametrize("stop_reason", ["end_turn", "max_tokens", "tool_use", "refusal"])
def test_primary_stop_reasons_survive_the_round_trip(stop_reason: str) -> None:
    assert stop_reason_for(finish_reason_for(stop_reason)) == stop_reason


@pytest.mark.parametrize(
    ("stop_reason", "back"),
    [
        ("stop_sequence", "end_turn"),
        ("pause_turn", "end_turn"),
        ("model_context_window_exceeded", "max_tokens"),
        (None, "end_turn"),
        ("new_reason", "end_turn"),
    ],
)
def test_folded_stop_reasons_come_back_as_their_openai_equivalent(
    stop_reason: str | None, back: str
) -> None:
    assert stop_reason_for(finish_reason_for(stop_reason)) == back


@pytest.mark.parametrize("finish", sorted(set(STOP_REASONS) - {"function_call"}))
def test_every_finish_reason_survives_the_round_trip(finish: str) -> None:
    assert finish_reason_for(stop_reason_for(finish)) == finish


def test_error_types_and_statuses_are_inverse() -> None:
    for error_type, status in ERROR_STATUSES.items():
        assert error_type_for_status(status) == error_type
    for status, error_type in ERROR_TYPES.items():
        expected = 529 if error_type == "overloaded_error" else status  # 503 and 529 share it
        assert status_for_error_type(error_type) == expected


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(418, "invalid_request_error"), (422, "invalid_request_error"), (502, "api_error")],
)
def test_unlisted_statuses_fall_back_as_anthropic_documents(status: int, error_type: str) -> None:
    assert error_type_for_status(status) == error_type


def test_unknown_error_types_stand_for_500() -> None:
    assert status_for_error_type("brand_new_error") == 500


@pytest.mark.parametrize(
    ("upstream", "answer"),
    [
        *[(400, 400), (404, 404), (413, 413), (422, 400), (429, 429), (503, 503), (529, 529)],
        *[(401, 502), (403, 502), (500, 502), (502, 502)],
    ],
)
def test_upstream_statuses_map_to_what_the_caller_can_act_on(upstream: int, answer: int) -> None:
    assert upstream_status_for(upstream) == answer


def test_tool_choices_are_a_bijection() -> None:
    assert {v: k for k, v in OPENAI_TOOL_CHOICES.items()} == TOOL_CHOICES
    assert len(set(TOOL_CHOICES.values())) == len(TOOL_CHOICES)


def test_content_kinds_map_back() -> None:
    for part, block in OPENAI_PARTS.items():
        assert USER_BLOCKS[block] == part
    assert [v[2] for v in STREAM_BLOCKS.values()] == ["reasoning", "text", "tool_calls"]


@pytest.mark.parametrize("effort", sorted(set(EFFORT_BUDGETS) - {"minimal"}))
def test_reasoning_efforts_survive_the_round_trip(effort: str) -> None:
    assert effort_for_budget(EFFORT_BUDGETS[effort]) == effort


def test_effort_thresholds() -> None:
    assert [effort_for_budget(b) for b in (1024, 2047, 2048, 8191, 8192, 64000)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]


# -- requests both ways -----------------------------------------------------------------------
ANTHROPIC_BODY: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 8192,
    "system": "Be brief.",
    "messages": [
        {"role": "user", "content": "Weather in Paris and the time?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "14:00"}],
                },
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                },
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
                },
                {"type": "text", "text": "Also this."},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Noted."}]},
        {"role": "user", "content": "Thanks"},
    ],
    "tools": [
        {
            "name": "get_weather",
            "description": "Weather of a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ],
    "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    "stop_sequences": ["END"],
    "temperature": 0.3,
    "top_p": 0.8,
    "top_k": 20,
    "metadata": {"user_id": "u-9"},
    "thinking": {"type": "enabled", "budget_tokens": 4096},
    "stream": True,
}


def _normalize(body: dict[str, Any]) -> dict[str, Any]:
    """An assistant string turn is the same as one text block."""
    out = copy.deepcopy(body)
    for message in out["messages"]:
        if message["role"] == "assistant" and isinstance(message["content"], str):
            message["content"] = [{"type": "text", "text": message["content"]}]
    return out


def test_anthropic_to_openai_to_anthropic_gives_the_same_request() -> None:
    # the last assistant turn holds no tool call, so the thinking budget is kept
    gateway = chat_request(parse_messages(ANTHROPIC_BODY))
    back = messages_body("claude-test", gateway, default_max_tokens=1)
    assert _normalize(back) == _normalize(ANTHROPIC_BODY)


def test_the_lossy_parts_are_exactly_the_documented_ones() -> None:
    body = copy.deepcopy(ANTHROPIC_BODY)
    body["messages"][1]["content"].insert(
        0, {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    )
    result = body["messages"][2]["content"][0]
    result["is_error"] = True
    result["cache_control"] = {"type": "ephemeral"}
    back = messages_body("claude-test", chat_request(parse_messages(body)), default_max_tokens=1)
    assert _normalize(back) == _normalize(ANTHROPIC_BODY)  # thinking, is_error, cache_control


OPENAI_REQUEST = ChatRequest(
    messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
            ],
        },
    ],
    max_tokens=1000,
    params={
        "temperature": 0.2,
        "top_p": 0.5,
        "stop": ["END"],
        "user": "u-1",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                    "description": "Weather of a city",
                },
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "reasoning_effort": "medium",
    },
)


def test_openai_to_anthropic_to_openai_gives_the_same_request() -> None:
    body = messages_body("claude-test", OPENAI_REQUEST, default_max_tokens=1)
    again = chat_request(parse_messages(body))  # the body is a valid Messages request
    assert again.messages[:3] == OPENAI_REQUEST.messages[:3]
    # the tool result and the user's next message form one Anthropic user turn, and come
    # back as the tool message then the user message
    assert again.messages[3:] == OPENAI_REQUEST.messages[3:]
    assert again.max_tokens == OPENAI_REQUEST.max_tokens
    expected = dict(OPENAI_REQUEST.params)
    # the last assistant turn holds a tool call: thinking is left out (no signed block to send)
    del expected["reasoning_effort"]
    assert again.params == expected


def test_reasoning_effort_becomes_a_thinking_budget_below_max_tokens() -> None:
    request = ChatRequest([{"role": "user", "content": "hi"}], params={"reasoning_effort": "high"})
    assert messages_body("m", request, default_max_tokens=32000)["thinking"] == {
        "type": "enabled",
        "budget_tokens": 16384,
    }
    assert messages_body("m", request, default_max_tokens=8000)["thinking"]["budget_tokens"] == 7999
    assert "thinking" not in messages_body("m", request, default_max_tokens=1000)


# -- streams: Anthropic -> chunks -> the anthropic surface ------------------------------------
def parse(events: list[Event]) -> list[Chunk]:
    parser = MessagesStreamParser()
    chunks: list[Chunk] = []
    for name, data in events:
        chunks += parser.feed(name, _json(data))
    assert parser.done
    return chunks


def _json(data: dict[str, Any]) -> str:
    import orjson

    return orjson.dumps(data).decode()


def gateway_events(chunks: list[Chunk]) -> list[GenEvent]:
    """What the gateway logs for these chunks: Started, one Token each, Finished."""
    finish = next(c.finish_reason for c in chunks if c.finish_reason is not None)
    usage = next(c.usage for c in reversed(chunks) if c.usage is not None)
    return [Started("m", 1), *(Token(c) for c in chunks), finished(finish, usage)]


def _comparable(message: Message) -> tuple[list[dict[str, Any]], str | None, int, int]:
    content = []
    for block in message.content:
        item = block.to_dict()
        if item["type"] == "redacted_thinking":
            continue  # no text: not carried by the gateway's events
        item.pop("signature", None)  # the gateway's events carry no signature
        content.append(item)
    return content, message.stop_reason, message.usage.input_tokens, message.usage.output_tokens


@pytest.mark.parametrize("name", ["text", "max_tokens", "tool_use", "thinking"])
async def test_a_stream_read_through_the_gateway_is_the_same_message(name: str) -> None:
    events = STREAMS[name]
    direct = await sdk_final_message([(n, _json(d)) for n, d in events])
    relayed = await sdk_final_message(encode_all(gateway_events(parse(events))))
    assert _comparable(relayed) == _comparable(direct)
    assert sse(events)  # the fixture is valid SSE too


async def test_a_stop_sequence_comes_back_as_end_turn() -> None:
    events = STREAMS["stop_sequence"]
    direct = await sdk_final_message([(n, _json(d)) for n, d in events])
    relayed = await sdk_final_message(encode_all(gateway_events(parse(events))))
    assert direct.stop_reason == "stop_sequence"
    assert relayed.stop_reason == "end_turn"  # the matched sequence is not in the events
    assert relayed.content[0].to_dict() == direct.content[0].to_dict()


def test_tool_use_blocks_become_openai_tool_call_deltas_with_stable_indexes() -> None:
    chunks = parse(STREAMS["tool_use"])
    calls = [call for c in chunks for call in c.tool_calls or ()]
    assert calls == [
        {
            "index": 0,
            "id": "toolu_01T1x",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {"index": 0, "function": {"arguments": '{"location":'}},
        {"index": 0, "function": {"arguments": ' "San Francisco, CA"}'}},
        {
            "index": 1,
            "id": "toolu_01T2y",
            "type": "function",
            "function": {"name": "get_time", "arguments": ""},
        },
        {"index": 1, "function": {"arguments": '{"tz": "PST"}'}},
    ]
    assert "".join(c.text for c in chunks) == "Okay, let me check the weather."
    assert chunks[-1].finish_reason == "tool_calls"
    assert chunks[-1].usage == Usage(472, 89)
