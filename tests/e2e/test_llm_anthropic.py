"""The Anthropic Messages API end to end: the official ``anthropic`` SDK (Python) and
``@anthropic-ai/sdk`` (Node) against a real ``mianzhang serve`` whose ``scripted`` model plays
the script each test sends as its user message (text, streamed tool calls, errors, pauses).

The server requires an API key, which the SDKs send as ``x-api-key``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic import AsyncAnthropic, AsyncStream
from anthropic.lib.streaming import AsyncMessageStream
from anthropic.types import RawMessageStreamEvent

from mianzhang.auth import hash_api_key
from tests._support.node import run_node
from tests._support.procs import ServerProcess, serve_process

from ._llm import sse_events

pytestmark = pytest.mark.e2e

KEY = "mz_e2e-anthropic-key"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TOOL_SCRIPT = [
    {"words": "Let me check."},
    {"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}, "chunks": 4}},
]


def server_env(**extra: str) -> dict[str, str]:
    """A server with the scripted model (default) and a fast demo model, requiring a key."""
    models = {
        "scripted": {"provider": "scripted"},
        "demo": {"provider": "demo", "ttft": 0, "token_delay": 0, "tokens": 12},
    }
    keys = {"sdk": {"digest": hash_api_key(KEY), "scopes": ["llm", "streams"]}}
    return {
        "MIANZHANG_AUTH__API_KEYS": json.dumps(keys),
        "MIANZHANG_AUTH__ANONYMOUS": "false",
        "MIANZHANG_LLM__MODELS": json.dumps(models),
        "MIANZHANG_LLM__DEFAULT_MODEL": "scripted",
        "MIANZHANG_LLM__GRACE_PERIOD": "10",
        "MIANZHANG_FILES__ENABLED": "false",
        "MIANZHANG_WEB": "false",
        **extra,
    }


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with serve_process(env=server_env()) as proc:
        yield proc


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[AsyncAnthropic]:
    sdk = AsyncAnthropic(base_url=server.url, api_key=KEY, max_retries=0)
    try:
        yield sdk
    finally:
        await sdk.close()


def script(*steps: dict[str, Any], delay: float = 0.0) -> str:
    """The user message that makes the scripted model play ``steps``."""
    return json.dumps({"script": list(steps), "delay": delay})


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def test_create_answers_a_message_with_usage_and_end_turn(client: AsyncAnthropic) -> None:
    message = await client.messages.create(
        model="scripted", max_tokens=100, messages=user("hello there")
    )
    assert message.id.startswith("msg_") and message.model == "scripted"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == 'turn 1: you said "hello there"'  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    counted = await client.messages.count_tokens(model="scripted", messages=user("hello there"))
    assert message.usage.input_tokens == counted.input_tokens > 0
    assert message.usage.output_tokens == 6  # one per word delta


async def test_a_streamed_tool_call_with_json_input_then_a_tool_result_turn(
    client: AsyncAnthropic,
) -> None:
    asked = user(script(*TOOL_SCRIPT))
    events: list[str] = []
    partial: list[str] = []
    async with client.messages.stream(
        model="scripted", max_tokens=100, messages=asked, tools=[WEATHER_TOOL]
    ) as stream:
        async for event in stream:
            events.append(event.type)
            if event.type == "input_json":
                partial.append(event.partial_json)
        message = await stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert len(partial) == 4 and json.loads("".join(partial)) == {"city": "Paris"}
    text, call = message.content
    assert text.type == "text" and text.text == "Let me check."
    assert call.type == "tool_use" and call.name == "get_weather"
    assert call.input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == 3 + 1 + 4  # words, the call's head, its pieces
    answered = [
        *asked,
        {"role": "assistant", "content": [b.model_dump() for b in message.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C, sunny"}],
        },
    ]
    reply = await client.messages.create(
        model="scripted", max_tokens=100, messages=answered, tools=[WEATHER_TOOL]
    )
    assert reply.content[0].text == f"turn 1: tool {call.id} returned 18 C, sunny"  # type: ignore[union-attr]
    assert reply.stop_reason == "end_turn"


async def test_max_tokens_cuts_the_answer_with_stop_reason_max_tokens(
    client: AsyncAnthropic,
) -> None:
    message = await client.messages.create(
        model="scripted", max_tokens=2, messages=user(script({"words": "one two three four"}))
    )
    assert message.content[0].text == "one two"  # type: ignore[union-attr]
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 2


async def test_count_tokens_counts_tools_too(client: AsyncAnthropic) -> None:
    plain = await client.messages.count_tokens(model="scripted", messages=user("what now?"))
    with_tools = await client.messages.count_tokens(
        model="scripted", messages=user("what now?"), tools=[WEATHER_TOOL]
    )
    assert 0 < plain.input_tokens < with_tools.input_tokens


async def test_an_unknown_model_is_a_404_not_found_error(client: AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as refused:
        await client.messages.create(model="nope", max_tokens=10, messages=user("hi"))
    assert refused.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model not found: 'nope'"},
    }
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.count_tokens(model="nope", messages=user("hi"))


async def test_a_wrong_key_is_refused_in_anthropic_s_shape(server: ServerProcess) -> None:
    wrong = AsyncAnthropic(base_url=server.url, api_key="mz_not-a-key", max_retries=0)
    try:
        with pytest.raises(anthropic.AuthenticationError) as refused:
            await wrong.messages.create(model="scripted", max_tokens=10, messages=user("hi"))
    finally:
        await wrong.close()
    assert refused.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


async def test_a_mid_stream_upstream_failure_is_raised_by_the_sdk(client: AsyncAnthropic) -> None:
    failing = script(
        {"words": "half an answer"}, {"error": {"status": 503, "message": "the model fell over"}}
    )
    texts: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as failed:
        async with client.messages.stream(
            model="scripted", max_tokens=100, messages=user(failing)
        ) as stream:
            async for text in stream.text_stream:
                texts.append(text)
    assert "".join(texts) == "half an answer"
    body: Any = failed.value.body
    assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"
    assert "the model fell over" in body["error"]["message"]


async def test_a_dropped_stream_resumes_through_the_streams_route(
    server: ServerProcess, client: AsyncAnthropic
) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    slow = script({"words": words}, delay=0.02)
    seen: list[Any] = []
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    body = {"model": "scripted", "max_tokens": 100, "stream": True, "messages": user(slow)}
    with httpx.stream(
        "POST", f"{server.url}/v1/messages", json=body, headers=headers, timeout=30
    ) as response:
        assert response.status_code == 200
        message_id = response.headers["x-stream-id"]
        for event in sse_events(response):
            seen.append(event)
            if event.event == "content_block_delta" and len(seen) >= 8:
                break  # the connection drops here, mid-answer
    assert message_id.startswith("msg_")
    rest = [e async for e in await _raw_stream(client, message_id, seen[-1].id)]
    assert rest[0].type == "content_block_delta" and rest[-1].type == "message_stop"
    replay = AsyncMessageStream(await _raw_stream(client, message_id), anthropic.NOT_GIVEN)
    final = await replay.get_final_message()
    assert final.id == message_id and final.stop_reason == "end_turn"
    assert final.content[0].text == words  # type: ignore[union-attr]
    # what the dropped connection had plus the rest is every event once (the SDK skips pings)
    everything = [e async for e in await _raw_stream(client, message_id)]
    had = [json.loads(e.data) for e in seen if e.event != "ping"]
    assert had + [e.model_dump(exclude_unset=True) for e in rest] == [
        e.model_dump(exclude_unset=True) for e in everything
    ]


async def _raw_stream(
    client: AsyncAnthropic, message_id: str, last_event_id: str | None = None
) -> AsyncStream[RawMessageStreamEvent]:
    """``GET /v1/streams/{id}`` after ``last_event_id``, parsed by the SDK's own stream."""
    headers = {"last-event-id": last_event_id} if last_event_id else {}
    return await client.get(
        f"/v1/streams/{message_id}",
        cast_to=RawMessageStreamEvent,  # type: ignore[arg-type]
        options={"headers": headers},
        stream=True,
        stream_cls=AsyncStream[RawMessageStreamEvent],
    )


def test_the_node_sdk_streams_a_tool_call(server: ServerProcess) -> None:
    request = {
        "model": "scripted",
        "max_tokens": 100,
        "messages": user(script(*TOOL_SCRIPT)),
        "tools": [WEATHER_TOOL],
    }
    result = run_node("anthropic.mjs", {"baseURL": server.url, "apiKey": KEY, "request": request})
    assert "error" not in result, result
    assert result["text"] == "Let me check."
    assert len(result["partialJson"]) == 4 and result["inputs"][-1] == {"city": "Paris"}
    message = result["message"]
    assert [b["type"] for b in message["content"]] == ["text", "tool_use"]
    assert message["content"][1]["input"] == {"city": "Paris"}
    assert message["stop_reason"] == "tool_use" and message["usage"]["output_tokens"] == 8
    assert result["events"][0] == "message_start" and result["events"][-1] == "message_stop"
