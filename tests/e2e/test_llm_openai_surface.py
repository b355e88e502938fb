"""The OpenAI API without gaps, with the official ``openai`` SDK against a real server: the
Responses API with function tools (through the scripted model and through an OpenAI-compatible
upstream, which must receive the tools), ``models.retrieve``, and OpenAI's error shape for an
unknown route and a wrong method."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from tests._support.procs import ServerProcess, uvicorn_process

from ._llm import API_KEY, APP, UpstreamControl, gateway_env

pytestmark = pytest.mark.e2e

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TOOL_SCRIPT = {
    "script": [
        {"words": "Let me check."},
        {"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}, "chunks": 3}},
    ]
}


@pytest.fixture(scope="module")
def gateway(upstream_proc: ServerProcess) -> Iterator[ServerProcess]:
    env = gateway_env(upstream_proc.url)
    models = json.loads(env["MIANZHANG_LLM__MODELS"])
    env["MIANZHANG_LLM__MODELS"] = json.dumps({**models, "scripted": {"provider": "scripted"}})
    with uvicorn_process(APP, factory=True, env=env) as proc:
        yield proc


@pytest.fixture
async def sdk(gateway: ServerProcess) -> AsyncIterator[AsyncOpenAI]:
    client = AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, max_retries=0)
    try:
        yield client
    finally:
        await client.close()


async def streamed(sdk: AsyncOpenAI, **request: Any) -> tuple[list[Any], Any]:
    """Every event of a streamed response, and the final response object."""
    events = [event async for event in await sdk.responses.create(stream=True, **request)]
    assert events[-1].type == "response.completed"
    return events, events[-1].response


def function_call_events(events: list[Any]) -> tuple[Any, str, str]:
    """The function call item as added, its streamed arguments, and its ``.done`` arguments."""
    added = [
        e.item
        for e in events
        if e.type == "response.output_item.added" and e.item.type == "function_call"
    ]
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    done = [e.arguments for e in events if e.type == "response.function_call_arguments.done"]
    assert len(added) == 1 and len(done) == 1 and len(deltas) >= 2
    return added[0], "".join(deltas), done[0]


async def test_responses_function_tool_through_the_scripted_model(sdk: AsyncOpenAI) -> None:
    asked = [{"role": "user", "content": json.dumps(TOOL_SCRIPT)}]
    events, final = await streamed(sdk, model="scripted", input=asked, tools=[WEATHER])
    added, arguments, done = function_call_events(events)
    assert added.name == "get_weather" and added.status == "in_progress"
    assert json.loads(arguments) == {"city": "Paris"} and done == arguments
    message, call = final.output
    assert message.type == "message" and message.content[0].text == "Let me check."
    assert call.type == "function_call" and call.arguments == arguments
    assert call.call_id == added.call_id and call.status == "completed"
    assert [tool.name for tool in final.tools] == ["get_weather"]
    answer = await sdk.responses.create(
        model="scripted",
        input=[
            *asked,
            *[item.model_dump(exclude_none=True) for item in final.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "18 C"},
        ],
        tools=[WEATHER],
    )
    assert answer.output_text == f"turn 1: tool {call.call_id} returned 18 C"


async def test_responses_function_tool_reaches_an_openai_upstream_and_comes_back(
    sdk: AsyncOpenAI, upstream: UpstreamControl
) -> None:
    call = {"id": "call_up_1", "name": "get_weather", "arguments": '{"city": "Lyon"}'}
    upstream.plan({"tokens": 2, "tool_call": call})
    events, final = await streamed(
        sdk, model="fake", input="weather in Lyon?", tools=[WEATHER], tool_choice="required"
    )
    sent = upstream.requests()[-1]["body"]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": WEATHER["description"],
                "parameters": WEATHER["parameters"],
            },
        }
    ]
    assert sent["tool_choice"] == "required"
    added, arguments, _ = function_call_events(events)
    assert added.call_id == "call_up_1" and arguments == '{"city": "Lyon"}'
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.output[0].content[0].text == "tok0 tok1"


async def test_hosted_tools_are_refused_not_dropped(sdk: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(model="scripted", input="hi", tools=[{"type": "web_search"}])
    assert refused.value.param == "tools[0].type"


async def test_a_max_output_tokens_cut_is_an_incomplete_response(sdk: AsyncOpenAI) -> None:
    response = await sdk.responses.create(model="demo", input="hi", max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 3


async def test_models_retrieve(sdk: AsyncOpenAI) -> None:
    demo = await sdk.models.retrieve("demo")
    assert demo.id == "demo" and demo.owned_by == "mianzhang-demo"
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk.models.retrieve("nope")
    assert missing.value.code == "model_not_found"


async def test_an_unknown_route_and_a_wrong_method_in_openai_s_shape(sdk: AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        await sdk.get("/embeddings", cast_to=object)
    assert unknown.value.response.json() == {
        "error": {
            "message": "no route GET /v1/embeddings",
            "type": "invalid_request_error",
            "param": None,
            "code": "not_found",
        }
    }
    with pytest.raises(openai.APIStatusError) as wrong:
        await sdk.get("/chat/completions", cast_to=object)
    assert wrong.value.status_code == 405
    assert wrong.value.response.headers["allow"] == "POST"
    assert wrong.value.code == "method_not_allowed"
    assert wrong.value.type == "invalid_request_error"


async def test_n_above_one_is_refused_with_a_clear_400(sdk: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert refused.value.param == "n"


async def test_the_demo_model_refuses_tools_instead_of_ignoring_them(sdk: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "function", "function": {"name": "f"}}],
            stream=True,
        )
    assert refused.value.code == "unsupported_by_upstream"
    assert "scripted" in refused.value.message
