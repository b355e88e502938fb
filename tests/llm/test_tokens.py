"""The token estimate used when an upstream reports no usage (and by ``count_tokens``)."""

from __future__ import annotations

from typing import Any

from mianzhang.llm._anthropic_convert import estimate_input_tokens
from mianzhang.llm._tokens import estimate_prompt_tokens, estimate_request_tokens, estimate_tokens
from mianzhang.llm._types import ChatRequest

TOOLS: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
CALL: Any = {
    "id": "c1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def test_words_punctuation_and_long_words() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("Hello, world!") == 6  # Hello (2) , world (2) !
    assert estimate_tokens("abcdefghi") == 3  # 1 + (9 - 1) // 4


def test_messages_count_their_text_plus_fixed_overheads() -> None:
    messages: Any = [
        {"role": "system", "content": "Be brief."},  # Be, brief (2), "." + 4
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]},
        {"role": "assistant", "content": None},  # 0 + 4
    ]
    assert estimate_prompt_tokens(messages) == 3 + (4 + 4) + (1 + 4) + 4
    assert estimate_prompt_tokens([]) == 3


def test_tool_call_arguments_and_tool_definitions_count() -> None:
    plain: Any = [{"role": "user", "content": "weather?"}]
    with_call: Any = [*plain, {"role": "assistant", "content": None, "tool_calls": [CALL]}]
    arguments = estimate_tokens('{"city": "Paris"}')
    assert estimate_prompt_tokens(with_call) == estimate_prompt_tokens(plain) + 4 + arguments
    tools = estimate_prompt_tokens(plain, TOOLS) - estimate_prompt_tokens(plain)
    assert tools > 0
    # arguments given as an object count as their JSON text
    as_object: Any = [{**CALL, "function": {"name": "f", "arguments": {"city": "Paris"}}}]
    assert estimate_prompt_tokens([{"role": "assistant", "tool_calls": as_object}]) == (
        3 + 4 + estimate_tokens('{"city":"Paris"}')
    )


def test_malformed_tool_calls_count_nothing() -> None:
    bad: Any = [{"role": "assistant", "tool_calls": ["x", {"function": "y"}, {}]}]
    assert estimate_prompt_tokens(bad) == 3 + 4
    assert estimate_prompt_tokens([{"role": "assistant", "tool_calls": "nope"}]) == 3 + 4


def test_the_gateway_and_count_tokens_agree() -> None:
    messages: Any = [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 21}'},
    ]
    request = ChatRequest(messages, params={"tools": TOOLS})
    assert estimate_input_tokens(request) == estimate_request_tokens(request)
    assert estimate_request_tokens(request) == estimate_prompt_tokens(messages, TOOLS)
    plain = ChatRequest([{"role": "user", "content": "hi"}])
    assert estimate_input_tokens(plain) == estimate_prompt_tokens(plain.messages) == 3 + 4 + 1
