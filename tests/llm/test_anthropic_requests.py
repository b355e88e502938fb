"""Messages API request bodies: validation (every required field missing or mistyped gives
Anthropic's 400), conversion to the gateway's OpenAI-shaped request, token counting, and the
error renderer (checked against the real ``anthropic`` SDK's exception classes)."""

from __future__ import annotations

import copy
from typing import Any

import anthropic
import orjson
import pytest

from mianzhang._errors import (
    Draining,
    Forbidden,
    RateLimited,
    RequestTooLarge,
    StreamNotFound,
    Unauthorized,
    UpstreamStreamError,
    UpstreamUnsupported,
)
from mianzhang.llm import (
    ChatRequest,
    GenerationCancelled,
    InvalidLLMRequest,
    ModelNotFound,
    UpstreamConnectError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from mianzhang.llm._anthropic_convert import chat_request, count_tokens, estimate_input_tokens
from mianzhang.llm._anthropic_errors import error_response
from mianzhang.llm._anthropic_requests import parse_count_tokens, parse_messages
from mianzhang.llm._tokens import estimate_prompt_tokens

from ._anthropic_sdk import REQUEST, client_for

PNG = "iVBORw0KGgo="
PDF = "JVBERi0xLjQ="

FULL: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 2048,
    "system": [
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Use tools."},
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                {
                    "type": "document",
                    "title": "spec.pdf",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                },
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "weather first", "signature": "sig"},
                {"type": "redacted_thinking", "data": "xyz"},
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
                    "is_error": True,
                    "content": [{"type": "text", "text": "clock broken"}],
                },
                {"type": "text", "text": "And now?"},
            ],
        },
    ],
    "tools": [
        {
            "name": "get_weather",
            "description": "Weather of a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"type": "custom", "name": "get_time", "input_schema": {"type": "object"}, "strict": True},
    ],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "stop_sequences": ["END", "STOP"],
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 40,
    "metadata": {"user_id": "u-1"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "stream": True,
    "service_tier": "auto",
}


def minimal(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }
    body.update(fields)
    return body


# -- conversion -------------------------------------------------------------------------------
def test_a_full_request_converts_to_openai_messages_and_parameters() -> None:
    parsed = parse_messages(orjson.dumps(FULL))
    assert parsed.body.stream is True
    request = chat_request(parsed)
    assert request.max_tokens == 2048
    assert request.messages == [
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "You are terse."},
                {"type": "text", "text": "Use tools."},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                {
                    "type": "file",
                    "file": {
                        "filename": "spec.pdf",
                        "file_data": f"data:application/pdf;base64,{PDF}",
                    },
                },
                {"type": "text", "text": "notes"},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18°C"},
        {
            "role": "tool",
            "tool_call_id": "toolu_2",
            "content": [{"type": "text", "text": "clock broken"}],
        },
        {"role": "user", "content": "And now?"},
    ]
    assert request.params == {
        "stop": ["END", "STOP"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "user": "u-1",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                    "description": "Weather of a city",
                },
            },
            {
                "type": "function",
                "function": {"name": "get_time", "parameters": {"type": "object"}, "strict": True},
            },
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "reasoning_effort": "low",
    }


def test_a_string_system_and_string_contents_stay_strings() -> None:
    request = chat_request(
        parse_messages(
            minimal(
                system="Be brief.",
                messages=[
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "bye"},
                ],
            )
        )
    )
    assert request.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
    ]
    assert request.params == {}
    assert request.max_tokens == 16


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        (
            {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
            {
                "tool_choice": {"type": "function", "function": {"name": "f"}},
                "parallel_tool_calls": False,
            },
        ),
    ],
)
def test_tool_choices_map_to_openai(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    params = chat_request(parse_messages(minimal(tools=tools, tool_choice=choice))).params
    assert {k: v for k, v in params.items() if k != "tools"} == expected


@pytest.mark.parametrize(
    ("fields", "effort"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 4096}}, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 20000}}, "high"),
        ({"thinking": {"type": "disabled"}}, None),
        ({"thinking": {"type": "adaptive"}}, None),
        ({"output_config": {"effort": "max"}}, "high"),
        ({"output_config": {"effort": "medium"}}, "medium"),
    ],
)
def test_thinking_and_effort_become_a_reasoning_effort(
    fields: dict[str, Any], effort: str | None
) -> None:
    params = chat_request(parse_messages(minimal(max_tokens=32000, **fields))).params
    assert params.get("reasoning_effort") == effort


def test_a_json_schema_output_format_becomes_a_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fields = {"output_config": {"format": {"type": "json_schema", "schema": schema}}}
    params = chat_request(parse_messages(minimal(**fields))).params
    assert params["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }


def test_an_assistant_turn_of_thinking_only_is_not_forwarded() -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]},
        {"role": "user", "content": "again"},
    ]
    request = chat_request(parse_messages(minimal(messages=messages)))
    assert [m["role"] for m in request.messages] == ["user", "user"]


def test_a_document_by_url_is_refused_with_its_location() -> None:
    document = {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}
    parsed = parse_messages(minimal(messages=[{"role": "user", "content": [document]}]))
    with pytest.raises(InvalidLLMRequest) as info:
        chat_request(parsed)
    assert info.value.param == "messages.0.content.0.source"


def test_ignored_service_hints_are_accepted() -> None:
    body = minimal(
        service_tier="auto",
        cache_control={"type": "ephemeral"},
        inference_geo="us",
        speed="fast",
        diagnostics={},
        workspace_id="w",
        user_profile_id="p",
    )
    assert chat_request(parse_messages(body)).params == {}


# -- bad input --------------------------------------------------------------------------------
def without(field: str) -> dict[str, Any]:
    body = minimal()
    del body[field]
    return body


def with_content(content: Any, role: str = "user") -> dict[str, Any]:
    return minimal(messages=[{"role": role, "content": content}])


BAD: list[tuple[Any, str]] = [
    (without("model"), "model"),
    (without("max_tokens"), "max_tokens"),
    (without("messages"), "messages"),
    (minimal(model=5), "model"),
    (minimal(model=""), "model"),
    (minimal(max_tokens="5"), "max_tokens"),
    (minimal(max_tokens=5.5), "max_tokens"),
    (minimal(max_tokens=0), "max_tokens"),
    (minimal(messages="hi"), "messages"),
    (minimal(messages=[]), "messages"),
    (minimal(messages=[{"role": "user"}]), "messages.0.content"),
    (minimal(messages=[{"content": "hi"}]), "messages.0.role"),
    (minimal(messages=[{"role": "system", "content": "hi"}]), "messages.0.role"),
    (minimal(messages=["hi"]), "messages.0"),
    (with_content(5), "messages.0.content"),
    (with_content([]), "messages.0.content"),
    (with_content([5]), "messages.0.content.0"),
    (with_content([{"text": "no type"}]), "messages.0.content.0.type"),
    (with_content([{"type": "video"}]), "messages.0.content.0.type"),
    (with_content([{"type": "text"}]), "messages.0.content.0.text"),
    (with_content([{"type": "text", "text": 5}]), "messages.0.content.0.text"),
    (with_content([{"type": "image"}]), "messages.0.content.0.source"),
    (
        with_content([{"type": "image", "source": {"type": "file"}}]),
        "messages.0.content.0.source.type",
    ),
    (
        with_content([{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}]),
        "messages.0.content.0.source.data",
    ),
    (
        with_content([{"type": "image", "source": {"type": "url"}}]),
        "messages.0.content.0.source.url",
    ),
    (
        with_content(
            [
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/html", "data": "x"},
                }
            ]
        ),
        "messages.0.content.0.source.media_type",
    ),
    (
        with_content([{"type": "tool_use", "id": "a", "name": "f", "input": {}}]),
        "messages.0.content.0.type",
    ),
    (with_content([{"type": "tool_result"}]), "messages.0.content.0.tool_use_id"),
    (
        with_content([{"type": "tool_result", "tool_use_id": "a", "content": 5}]),
        "messages.0.content.0.content",
    ),
    (
        with_content(
            [{"type": "tool_result", "tool_use_id": "a", "content": [{"type": "tool_use"}]}]
        ),
        "messages.0.content.0.content.0.type",
    ),
    (
        with_content([{"type": "tool_result", "tool_use_id": "a", "is_error": "yes"}]),
        "messages.0.content.0.is_error",
    ),
    (
        with_content([{"type": "tool_result", "tool_use_id": "a"}], "assistant"),
        "messages.0.content.0.type",
    ),
    (
        with_content([{"type": "tool_use", "name": "f", "input": {}}], "assistant"),
        "messages.0.content.0.id",
    ),
    (
        with_content([{"type": "tool_use", "id": "a", "name": "f", "input": "{}"}], "assistant"),
        "messages.0.content.0.input",
    ),
    (
        with_content([{"type": "thinking", "thinking": "t"}], "assistant"),
        "messages.0.content.0.signature",
    ),
    (with_content([{"type": "redacted_thinking"}], "assistant"), "messages.0.content.0.data"),
    (minimal(system=5), "system"),
    (minimal(system=[{"type": "image", "source": {}}]), "system.0.type"),
    (minimal(tools={"name": "f"}), "tools"),
    (minimal(tools=[{"input_schema": {}}]), "tools.0.name"),
    (minimal(tools=[{"name": "f"}]), "tools.0.input_schema"),
    (minimal(tools=[{"name": "f", "input_schema": "object"}]), "tools.0.input_schema"),
    (minimal(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools.0.type"),
    (minimal(tool_choice="auto"), "tool_choice"),
    (minimal(tool_choice={"type": "sometimes"}), "tool_choice.type"),
    (minimal(tool_choice={"type": "tool"}), "tool_choice.name"),
    (
        minimal(tool_choice={"type": "auto", "disable_parallel_tool_use": "yes"}),
        "tool_choice.disable_parallel_tool_use",
    ),
    (minimal(stop_sequences="END"), "stop_sequences"),
    (minimal(stop_sequences=[1]), "stop_sequences.0"),
    (minimal(temperature="hot"), "temperature"),
    (minimal(temperature=1.5), "temperature"),
    (minimal(top_p=2), "top_p"),
    (minimal(top_k=-1), "top_k"),
    (minimal(top_k="1"), "top_k"),
    (minimal(stream="true"), "stream"),
    (minimal(metadata={"user_id": 5}), "metadata.user_id"),
    (minimal(metadata={"session": "x"}), "metadata.session"),
    (minimal(thinking={"type": "enabled"}), "thinking.budget_tokens"),
    (minimal(thinking={"type": "enabled", "budget_tokens": 100}), "thinking.budget_tokens"),
    (minimal(thinking={"type": "enabled", "budget_tokens": 2000}), "max_tokens"),
    (minimal(thinking={"type": "on"}), "thinking.type"),
    (minimal(output_config={"format": {"type": "json_schema"}}), "output_config.format.schema"),
    (minimal(surprise=1), "surprise"),
]


@pytest.mark.parametrize(("body", "param"), BAD, ids=[p for _, p in BAD])
def test_bad_input_is_an_invalid_request_naming_the_field(body: dict[str, Any], param: str) -> None:
    for raw in (body, orjson.dumps(body)):
        with pytest.raises(InvalidLLMRequest) as info:
            parse_messages(raw)
        assert info.value.param == param
        assert str(info.value).startswith(f"{param}: ")
        status, payload = error_response(info.value)
        assert status == 400
        assert payload == {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": str(info.value)},
        }


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b""])
def test_a_body_that_is_not_a_json_object_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidLLMRequest):
        parse_messages(raw)


def test_anthropics_field_required_message_is_reproduced() -> None:
    with pytest.raises(InvalidLLMRequest, match=r"^max_tokens: Field required$"):
        parse_messages(without("max_tokens"))


def test_validation_does_not_change_the_callers_body() -> None:
    body = copy.deepcopy(FULL)
    parse_messages(body)
    assert body == FULL


# -- count_tokens -----------------------------------------------------------------------------
def test_count_tokens_needs_no_max_tokens_and_refuses_generation_fields() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "system": "s"}
    parsed = parse_count_tokens(body)
    assert parsed.max_tokens is None
    assert chat_request(parsed).max_tokens is None
    with pytest.raises(InvalidLLMRequest) as info:
        parse_count_tokens({**body, "max_tokens": 5})
    assert info.value.param == "max_tokens"
    with pytest.raises(InvalidLLMRequest) as info:
        parse_count_tokens({"model": "m"})
    assert info.value.param == "messages"
    answer = count_tokens(parsed)
    assert answer == {"input_tokens": estimate_prompt_tokens(chat_request(parsed).messages)}
    assert answer["input_tokens"] > 0


def test_the_estimate_is_the_gateways_with_tool_definitions() -> None:
    plain = chat_request(
        parse_count_tokens(
            {"model": "m", "messages": [{"role": "user", "content": "How are you today?"}]}
        )
    )
    assert estimate_input_tokens(plain) == estimate_prompt_tokens(plain.messages) > 0
    with_tools = chat_request(
        parse_count_tokens(
            {
                k: v
                for k, v in FULL.items()
                if k
                not in (
                    "max_tokens",
                    "stream",
                    "stop_sequences",
                    "temperature",
                    "top_p",
                    "top_k",
                    "metadata",
                    "service_tier",
                )
            }
        )
    )
    # one estimate for both: the gateway's counts tool-call arguments and, given them, tools
    tools = with_tools.params["tools"]
    assert estimate_input_tokens(with_tools) == estimate_prompt_tokens(with_tools.messages, tools)
    base = estimate_prompt_tokens(with_tools.messages)
    no_tools = ChatRequest(with_tools.messages, params={})
    assert estimate_input_tokens(with_tools) > estimate_input_tokens(no_tools) == base
    without_calls = [{k: v for k, v in m.items() if k != "tool_calls"} for m in no_tools.messages]
    assert base > estimate_prompt_tokens(without_calls)  # FULL has tool calls: counted


# -- the error renderer -----------------------------------------------------------------------
ERRORS: list[tuple[BaseException, int, str]] = [
    (InvalidLLMRequest("bad"), 400, "invalid_request_error"),
    (UpstreamUnsupported("no audio"), 400, "invalid_request_error"),
    (Unauthorized("no key"), 401, "authentication_error"),
    (Forbidden("not yours"), 403, "permission_error"),
    (ModelNotFound("nope"), 404, "not_found_error"),
    (StreamNotFound("s"), 404, "not_found_error"),
    (RequestTooLarge(1024), 413, "request_too_large"),
    (RateLimited("per-key", 10, 60, 5), 429, "rate_limit_error"),
    (GenerationCancelled("stopped"), 499, "cancelled_error"),
    (GenerationCancelled("shutdown"), 529, "overloaded_error"),
    (Draining("bye"), 529, "overloaded_error"),
    (UpstreamTimeout("slow"), 504, "timeout_error"),
    (UpstreamStatusError(429, "limited", retryable=True), 429, "rate_limit_error"),
    (UpstreamStatusError(529, "overloaded", retryable=True), 529, "overloaded_error"),
    (UpstreamStatusError(503, "unavailable", retryable=True), 503, "overloaded_error"),
    (UpstreamStatusError(400, "bad", retryable=False), 400, "invalid_request_error"),
    (UpstreamStatusError(422, "bad", retryable=False), 400, "invalid_request_error"),
    (UpstreamStatusError(401, "upstream key", retryable=False), 502, "api_error"),
    (UpstreamStatusError(500, "boom", retryable=True), 502, "api_error"),
    (UpstreamStreamError("overloaded_error", "o", status_code=529), 529, "overloaded_error"),
    (UpstreamStreamError("authentication_error", "k", status_code=401), 502, "api_error"),
    (UpstreamConnectError("refused"), 502, "api_error"),
    (RuntimeError("secret internals"), 500, "api_error"),
]


@pytest.mark.parametrize(
    ("exc", "status", "error_type"), ERRORS, ids=[f"{type(e).__name__}-{s}" for e, s, _ in ERRORS]
)
def test_errors_render_with_anthropics_status_and_type(
    exc: BaseException, status: int, error_type: str
) -> None:
    got_status, body = error_response(exc)
    assert (got_status, body["type"], body["error"]["type"]) == (status, "error", error_type)
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if isinstance(exc, RuntimeError):
        assert "secret" not in body["error"]["message"]


@pytest.mark.parametrize(
    ("exc", "sdk_error"),
    [
        (InvalidLLMRequest("bad"), anthropic.BadRequestError),
        (Unauthorized("no key"), anthropic.AuthenticationError),
        (Forbidden("no"), anthropic.PermissionDeniedError),
        (ModelNotFound("nope"), anthropic.NotFoundError),
        (RequestTooLarge(10), anthropic.ContentTooLargeError),
        (RateLimited("k", 1, 1, 1), anthropic.RateLimitError),
        (UpstreamStatusError(529, "o", retryable=True), anthropic.OverloadedError),
        (RuntimeError("x"), anthropic.InternalServerError),
    ],
)
async def test_the_sdk_raises_its_own_class_for_each_rendered_error(
    exc: BaseException, sdk_error: type[anthropic.APIStatusError]
) -> None:
    status, body = error_response(exc)
    client = client_for(orjson.dumps(body), status=status)
    try:
        with pytest.raises(sdk_error) as info:
            await client.messages.create(**REQUEST)
    finally:
        await client.close()
    assert info.value.status_code == status
    assert info.value.body == body
