"""AI SDK chat requests (``DefaultChatTransport`` bodies) as gateway messages, and every way a
body can be wrong (each a specific 400)."""

from __future__ import annotations

from typing import Any

import pytest

from mianzhang.llm import InvalidLLMRequest
from mianzhang.llm._ui_messages import parse_ui_chat_request
from mianzhang.llm._ui_surface import UISurface
from tests._support.node import run_node

from ._generations import encode, generate, sse

PNG = "data:image/png;base64,iVBORw0KGgo="
PDF = "data:application/pdf;base64,JVBERi0xLjQK"


def body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "chat-1", "messages": list(messages), "trigger": "submit-message", **extra}


def user(*parts: dict[str, Any], id: str = "u1") -> dict[str, Any]:
    return {"id": id, "role": "user", "parts": list(parts)}


def assistant(*parts: dict[str, Any], id: str = "a1") -> dict[str, Any]:
    return {"id": id, "role": "assistant", "parts": list(parts)}


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def tool(state: str, call_id: str = "c1", **fields: Any) -> dict[str, Any]:
    return {"type": "tool-weather", "toolCallId": call_id, "state": state, **fields}


async def test_a_body_sent_by_the_real_transport_after_a_tool_round_trip() -> None:
    """The AI SDK's ``Chat`` gets a tool call from our stream, the app adds the tool output,
    the user sends again: that POST body converts to the conversation OpenAI expects."""
    script = [
        {"reasoning": "Thinking."},
        {"words": "Let me check."},
        {"tool_call": {"name": "get_weather", "id": "call_w", "arguments": {"city": "Paris"}}},
    ]
    first = sse(encode(UISurface(), await generate(script)))
    second = sse(encode(UISurface(), await generate([{"text": "ok"}]), message_id="gen-2"))
    follow_up = {
        "toolOutput": {"tool": "get_weather", "toolCallId": "call_w", "output": {"temp": 21}},
        "text": "thanks",
        "post": second,
    }
    job = {"mode": "chat", "text": "weather?", "post": first, "followUp": follow_up}
    sent = run_node("ai_sdk.mjs", job)["requests"][-1]["body"]
    chat = parse_ui_chat_request(sent)
    assert (chat.chat_id, chat.trigger, chat.message_id) == ("chat-1", "submit-message", None)
    assert chat.messages == [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_w", "content": '{"temp":21}'},
        {"role": "user", "content": "thanks"},
    ]
    assert [m.id for m in chat.ui_messages] == [m["id"] for m in sent["messages"]]


def test_system_user_files_steps_and_tool_results() -> None:
    chat = parse_ui_chat_request(
        body(
            {"id": "s", "role": "system", "parts": [text("Be "), text("brief.")]},
            user(
                text("What is in these?"),
                {"type": "file", "mediaType": "image/png", "url": PNG},
                {"type": "file", "mediaType": "image/jpeg", "url": "https://x.test/a.jpg"},
                {"type": "file", "mediaType": "application/pdf", "url": PDF, "filename": "a.pdf"},
                {"type": "file", "mediaType": "audio/wav", "url": "data:audio/wav;base64,UklG"},
                {"type": "data-note", "data": {"x": 1}},
            ),
            assistant(
                {"type": "step-start"},
                {"type": "reasoning", "text": "hidden"},
                text("Checking."),
                tool("output-available", "c1", input={"q": 1}, output="sunny"),
                tool("output-error", "c2", input={"q": 2}, errorText="boom"),
                tool("input-available", "c3", input={"q": 3}),  # no result yet: left out
                {"type": "step-start"},
                {
                    "type": "dynamic-tool",
                    "toolName": "search",
                    "toolCallId": "c4",
                    "state": "output-denied",
                    "input": {},
                    "approval": {"id": "p", "approved": False, "reason": "not allowed"},
                },
                {"type": "source-url", "sourceId": "s1", "url": "https://x.test"},
                {"type": "steering-message", "id": "st", "parts": [text("actually, Rome")]},
                text("Done."),
            ),
        )
    )
    call = lambda i, name, args: {  # noqa: E731
        "id": i,
        "type": "function",
        "function": {"name": name, "arguments": args},
    }
    assert chat.messages == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": PNG}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                {"type": "file", "file": {"file_data": PDF, "filename": "a.pdf"}},
                {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [call("c1", "weather", '{"q":1}'), call("c2", "weather", '{"q":2}')],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "boom"},
        {"role": "assistant", "content": None, "tool_calls": [call("c4", "search", "{}")]},
        {"role": "tool", "tool_call_id": "c4", "content": "not allowed"},
        {"role": "user", "content": "actually, Rome"},
        {"role": "assistant", "content": "Done."},
    ]


def test_regenerate_and_extra_body_fields() -> None:
    chat = parse_ui_chat_request(
        body(
            user(text("hi")),
            trigger="regenerate-message",
            messageId="a9",
            model="scripted",
            temperature=0.2,
        )
    )
    assert chat.trigger == "regenerate-message" and chat.message_id == "a9"
    assert chat.extra == {"model": "scripted", "temperature": 0.2}


@pytest.mark.parametrize(
    ("raw", "param", "message"),
    [
        ([], "body", "expected a JSON object"),
        ({"messages": [user(text("x"))]}, "id", "Field required"),
        (body(), "messages", "at least 1 item"),
        ({**body(user(text("x"))), "id": "a\nb"}, "id", "should match pattern"),
        ({**body(user(text("x"))), "trigger": "resume-stream"}, "trigger", "Input should be"),
        (body({"id": "m", "role": "tool", "parts": []}), "messages[0].role", "Input should be"),
        (body({"id": "m", "role": "user"}), "messages[0].parts", "Field required"),
        (body(user({"text": "no type"})), "messages[0].parts[0]", "string type"),
        (body(user({"type": "text"})), "messages[0].parts[0].text", "Field required"),
        (body(user({"type": "video", "url": "x"})), "messages[0].parts[0].type", "unknown part"),
        (body(user({"type": "reasoning", "text": "x"})), "messages[0].parts", "needs a text"),
        (
            body(user({"type": "file", "mediaType": "application/pdf", "url": "https://x/a.pdf"})),
            "messages[0].parts[0]",
            "must be sent as a data: URL (got 'https')",
        ),
        (
            body(user({"type": "file", "mediaType": "image/png", "url": "ftp://x/a.png"})),
            "messages[0].parts[0]",
            "an image must be an http(s): or data: URL",
        ),
        (
            body(user({"type": "file", "mediaType": "audio/mpeg", "url": "data:audio/mpeg,xx"})),
            "messages[0].parts[0]",
            "audio must be a base64 data: URL",
        ),
        (
            body(user({"type": "file", "url": PNG})),
            "messages[0].parts[0].mediaType",
            "Field required",
        ),
        (
            body(user(text("x")), assistant(tool("output-available", call_id=""))),
            "messages[1].parts[0].toolCallId",
            "at least 1 character",
        ),
        (
            body(user(text("x")), assistant(tool("finished"))),
            "messages[1].parts[0].state",
            "Input should be",
        ),
        (
            body(
                user(text("x")),
                assistant({"type": "dynamic-tool", "toolCallId": "c", "state": "output-error"}),
            ),
            "messages[1].parts[0]",
            "needs a tool name",
        ),
        (
            body(user(text("x")), assistant({"type": "image", "url": PNG})),
            "messages[1].parts[0].type",
            "unknown part type 'image' (known: text, file",
        ),
    ],
)
def test_malformed_bodies_are_each_a_specific_error(raw: Any, param: str, message: str) -> None:
    with pytest.raises(InvalidLLMRequest) as info:
        parse_ui_chat_request(raw)
    assert info.value.param == param, str(info.value)
    assert message in str(info.value) and str(info.value).startswith(param)
