"""Request bodies: strict where the gateway acts, pass-through for the rest, 400s that name
the parameter."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mianzhang.llm import InvalidLLMRequest
from mianzhang.llm._requests import (
    MAX_OUTPUT_TOKENS,
    ChatCompletionBody,
    GenerationBody,
    ResponsesBody,
    parse_body,
)


def chat(**fields: object) -> ChatCompletionBody:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return parse_body(orjson.dumps(body), ChatCompletionBody)


def test_chat_body_passes_unknown_openai_params_upstream() -> None:
    body = chat(
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.3,
        tools=[{"type": "function"}],
        max_completion_tokens=9,
        background=True,
    )
    request = body.chat_request()
    assert body.stream and body.include_usage and body.background
    assert request.max_tokens == 9
    assert request.params == {"temperature": 0.3, "tools": [{"type": "function"}]}


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"{not json", None),
        (b"[1]", None),
        (orjson.dumps({"model": "m", "messages": []}), "messages"),
        (orjson.dumps({"model": "m"}), "messages"),
        (orjson.dumps({"messages": [{"role": "user"}], "n": 2}), "n"),
        (orjson.dumps({"messages": [{"role": "user"}], "max_tokens": 0}), "max_tokens"),
        (orjson.dumps({"messages": [{"role": "user"}], "stream": "yes"}), "stream"),
    ],
)
def test_bad_chat_bodies_name_the_parameter(raw: bytes, param: str | None) -> None:
    with pytest.raises(InvalidLLMRequest) as info:
        parse_body(raw, ChatCompletionBody)
    assert info.value.param == param


def test_messages_need_a_known_role() -> None:
    with pytest.raises(InvalidLLMRequest) as info:
        chat(messages=[{"role": "wizard", "content": "x"}]).chat_request()
    assert info.value.param == "messages[0].role"
    with pytest.raises(InvalidLLMRequest):
        chat(messages=[{"content": "no role"}]).chat_request()


def test_responses_body() -> None:
    body = parse_body(
        orjson.dumps(
            {
                "model": "m",
                "input": "hi",
                "instructions": "short",
                "max_output_tokens": 5,
                "temperature": 0,
            }
        ),
        ResponsesBody,
    )
    request = body.chat_request()
    assert request.messages[0] == {"role": "system", "content": "short"}
    assert request.max_tokens == 5 and request.params == {"temperature": 0}
    assert body.echo_params()["temperature"] == 0
    with pytest.raises(InvalidLLMRequest):
        parse_body(orjson.dumps({"model": "m"}), ResponsesBody)


def test_generation_body_is_strict() -> None:
    body = parse_body(
        orjson.dumps({"messages": [{"role": "user", "content": "x"}], "temperature": 0.5}),
        GenerationBody,
    )
    assert body.chat_request().params == {"temperature": 0.5}
    with pytest.raises(InvalidLLMRequest):
        parse_body(orjson.dumps({"messages": [{"role": "user"}], "surprise": 1}), GenerationBody)


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (ChatCompletionBody, "max_tokens"),
        (ChatCompletionBody, "max_completion_tokens"),
        (GenerationBody, "max_tokens"),
        (ResponsesBody, "max_output_tokens"),
    ],
)
def test_output_token_limits_are_bounded(model: type[Any], field: str) -> None:
    base = {"messages": [{"role": "user", "content": "x"}], "input": "x"}
    if model is GenerationBody:
        base.pop("input")
    accepted = parse_body(orjson.dumps({**base, field: MAX_OUTPUT_TOKENS}), model)
    assert getattr(accepted, field) == MAX_OUTPUT_TOKENS
    with pytest.raises(InvalidLLMRequest) as refused:
        parse_body(orjson.dumps({**base, field: MAX_OUTPUT_TOKENS + 1}), model)
    assert refused.value.param == field
