"""Responses API function tools -> the gateway's chat tool parameters (and the response's
echo of them); hosted tools refused with a 400 naming the tool, never dropped."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mianzhang.llm import InvalidLLMRequest
from mianzhang.llm._requests import ResponsesBody, parse_body
from mianzhang.llm._responses_tools import chat_tool, chat_tool_choice

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


def body(**fields: Any) -> ResponsesBody:
    return parse_body(orjson.dumps({"model": "m", "input": "hi", **fields}), ResponsesBody)


def test_function_tools_reach_the_chat_request_in_chat_s_shape() -> None:
    request = body(tools=[WEATHER], tool_choice="required", parallel_tool_calls=False)
    params = request.chat_request().params
    assert params["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather",
                "parameters": WEATHER["parameters"],
                "strict": False,
            },
        }
    ]
    assert params["tool_choice"] == "required" and params["parallel_tool_calls"] is False
    echo = request.echo_params()
    assert echo["tools"] == [WEATHER] and echo["tool_choice"] == "required"
    assert echo["parallel_tool_calls"] is False


def test_without_tools_nothing_is_added_or_echoed() -> None:
    request = body()
    assert request.chat_request().params == {}
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(request.echo_params())


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_tool_choices(choice: Any, expected: Any) -> None:
    assert chat_tool_choice(choice) == expected


@pytest.mark.parametrize(
    ("tool", "param"),
    [
        ({"type": "web_search"}, "tools[0].type"),
        ({"type": "file_search", "vector_store_ids": []}, "tools[0].type"),
        ({"type": "function"}, "tools[0].name"),
        ({"type": "function", "name": "f", "parameters": "x"}, "tools[0].parameters"),
        ("f", "tools[0]"),
    ],
)
def test_tools_that_cannot_be_served_are_refused(tool: Any, param: str) -> None:
    with pytest.raises(InvalidLLMRequest) as refused:
        chat_tool(tool, 0)
    assert refused.value.param == param


@pytest.mark.parametrize("choice", ["sometimes", {"type": "function"}, {"type": "file_search"}])
def test_bad_tool_choices_are_refused(choice: Any) -> None:
    with pytest.raises(InvalidLLMRequest):
        chat_tool_choice(choice)
