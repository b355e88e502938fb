"""AG-UI run inputs (``RunAgentInput``) as gateway messages and tools, and every way an input
can be wrong (each a specific 400)."""

from __future__ import annotations

from typing import Any

import pytest
from ag_ui.core import (
    AssistantMessage,
    Context,
    DeveloperMessage,
    FunctionCall,
    ReasoningMessage,
    RunAgentInput,
    SystemMessage,
    Tool,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from ag_ui.core.types import DataSource, ImagePart, TextPart, UrlSource

from mianzhang.llm import InvalidLLMRequest
from mianzhang.llm._agui_input import parse_run_agent_input
from tests._support.node import run_node

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": WEATHER_TOOL["parameters"],
    },
}
CALL = {
    "id": "call_w",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}


def test_the_body_http_agent_sends() -> None:
    messages = [
        {"id": "s1", "role": "system", "content": "Be brief."},
        {"id": "u1", "role": "user", "content": "weather?"},
        {"id": "a1", "role": "assistant", "content": "Checking.", "toolCalls": [CALL]},
        {"id": "t1", "role": "tool", "toolCallId": "call_w", "content": '{"temp":21}'},
        {"id": "r1", "role": "reasoning", "content": "hidden"},
        {"id": "u2", "role": "user", "content": "thanks"},
    ]
    job = {
        "sse": "",
        "messages": messages,
        "tools": [WEATHER_TOOL],
        "context": [{"description": "city of the user", "value": "Paris"}],
        "forwardedProps": {"model": "scripted"},
        "state": {"step": 1},
        "runId": "run-7",
    }
    sent = run_node("agui.mjs", job)["request"]["body"]
    run = parse_run_agent_input(sent)
    assert (run.thread_id, run.run_id, run.parent_run_id) == ("thread-1", "run-7", None)
    assert run.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Context for this run:\n- city of the user: Paris"},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_w", "content": '{"temp":21}'},
        {"role": "user", "content": "thanks"},
    ]
    assert run.tools == [OPENAI_TOOL]
    assert run.state == {"step": 1} and run.forwarded_props == {"model": "scripted"}


def test_a_body_built_with_ag_ui_protocol_models() -> None:
    png = DataSource(value="iVBORw0KGgo=", mime_type="image/png")
    run_input = RunAgentInput(
        thread_id="t",
        run_id="r",
        parent_run_id="p",
        state=None,
        messages=[
            DeveloperMessage(id="d", content="Use tools."),
            SystemMessage(id="s", content="Be brief."),
            UserMessage(
                id="u",
                content=[
                    TextPart(text="What is this?"),
                    ImagePart(source=png),
                    ImagePart(source=UrlSource(value="https://x.test/a.png")),
                ],
            ),
            AssistantMessage(
                id="a",
                tool_calls=[
                    ToolCall(id="c1", function=FunctionCall(name="f", arguments="{}")),
                    ToolCall(id="c2", function=FunctionCall(name="g", arguments="{}")),
                ],
            ),
            ToolMessage(id="t", tool_call_id="c1", content="", error="timed out"),
            ReasoningMessage(id="r", content="hmm"),
        ],
        tools=[Tool(name="f", description="")],
        context=[Context(description="d", value="v")],
        forwarded_props=None,
    )
    run = parse_run_agent_input(run_input.model_dump(mode="json", by_alias=True))
    assert run.parent_run_id == "p"
    assert run.messages == [
        {"role": "system", "content": "Use tools."},
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Context for this run:\n- d: v"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            ],
        },
        # c2 has no result: left out (OpenAI rejects a call without its result)
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Error: timed out"},
    ]
    assert run.tools == [
        {
            "type": "function",
            "function": {
                "name": "f",
                "description": "",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]


def test_other_media_and_the_0x_binary_part() -> None:
    pdf = {"type": "data", "value": "JVBERi0=", "mimeType": "application/pdf"}
    wav = {"type": "data", "value": "UklG", "mimeType": "audio/wav"}
    run = parse_run_agent_input(
        {
            "threadId": "t",
            "runId": "r",
            "messages": [
                {
                    "id": "u",
                    "role": "user",
                    "content": [
                        {"type": "document", "source": pdf},
                        {"type": "audio", "source": wav},
                        {"type": "binary", "mimeType": "image/gif", "url": "https://x.test/a.gif"},
                        {
                            "type": "binary",
                            "mimeType": "text/plain",
                            "data": "aGk=",
                            "filename": "a",
                        },
                    ],
                },
                {"id": "x", "role": "activity", "activityType": "progress", "content": {}},
            ],
        }
    )
    assert run.messages == [
        {
            "role": "user",
            "content": [
                {
                    "type": "file",
                    "file": {
                        "file_data": "data:application/pdf;base64,JVBERi0=",
                        "filename": "file",
                    },
                },
                {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.gif"}},
                {
                    "type": "file",
                    "file": {"file_data": "data:text/plain;base64,aGk=", "filename": "a"},
                },
            ],
        }
    ]
    assert run.tools is None


def run_input(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"threadId": "t", "runId": "r", "messages": list(messages), **fields}


def user(content: Any) -> dict[str, Any]:
    return {"id": "u", "role": "user", "content": content}


@pytest.mark.parametrize(
    ("raw", "param", "message"),
    [
        ("[]", "body", "expected a JSON object"),
        ({"runId": "r", "messages": []}, "threadId", "Field required"),
        (run_input(user("x"), threadId=""), "threadId", "at least 1 character"),
        ({"threadId": "t", "runId": "r"}, "messages", "Field required"),
        (
            run_input({"id": "m", "role": "robot", "content": "x"}),
            "messages[0].role",
            "unknown role 'robot'",
        ),
        (run_input("hello"), "messages[0]", "Input should be a valid dictionary"),
        (run_input({"id": "m", "role": "system"}), "messages[0].content", "Field required"),
        (run_input(user(42)), "messages[0].content", "Input should be"),
        (run_input(user([{"type": "text"}])), "messages[0].content[0].text", "Field required"),
        (
            run_input(user([{"type": "gif"}])),
            "messages[0].content[0].type",
            "unknown content part 'gif'",
        ),
        (run_input(user([])), "messages[0].content", "empty"),
        (
            run_input(user([{"type": "video", "source": {"type": "url", "value": "https://v"}}])),
            "messages[0].content[0].type",
            "video input is not supported",
        ),
        (
            run_input(user([{"type": "image", "source": {"type": "file", "value": "file-1"}}])),
            "messages[0].content[0].source",
            "provider file handles are not supported",
        ),
        (
            run_input(
                user([{"type": "document", "source": {"type": "url", "value": "https://d"}}])
            ),
            "messages[0].content[0]",
            "must be sent as a data: URL",
        ),
        (
            run_input(user([{"type": "image", "source": {"type": "data", "value": "AAA"}}])),
            "messages[0].content[0]",
            "mimeType: required for data",
        ),
        (
            run_input(user([{"type": "binary", "mimeType": "image/png"}])),
            "messages[0].content[0]",
            "a binary part needs data or url",
        ),
        (
            run_input({"id": "t", "role": "tool", "toolCallId": "ghost", "content": "x"}),
            "messages[0].toolCallId",
            "no earlier assistant message made tool call 'ghost'",
        ),
        (
            run_input({"id": "t", "role": "tool", "content": "x"}),
            "messages[0].toolCallId",
            "Field required",
        ),
        (
            run_input(
                {
                    "id": "a",
                    "role": "assistant",
                    "toolCalls": [{"id": "c", "function": {"name": "f"}}],
                }
            ),
            "messages[0].toolCalls[0].function.arguments",
            "Field required",
        ),
        (
            run_input(user("x"), tools=[{"name": "has space", "description": ""}]),
            "tools[0].name",
            "should match pattern",
        ),
        (
            run_input(user("x"), context=[{"description": "d"}]),
            "context[0].value",
            "Field required",
        ),
    ],
)
def test_malformed_inputs_are_each_a_specific_error(raw: Any, param: str, message: str) -> None:
    with pytest.raises(InvalidLLMRequest) as info:
        parse_run_agent_input(raw)
    assert info.value.param == param, str(info.value)
    assert message in str(info.value), str(info.value)
