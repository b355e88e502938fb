"""The gateway in front of itself: a front mianzhang whose models are another mianzhang's
scripted model, reached through its ``/v1/messages`` (``anthropic`` provider) and its
``/v1/chat/completions`` (``openai`` provider). A streamed tool call read through both hops,
in either client API, is what the back instance gives when read directly: the same text, the
same tool call (id, name, argument pieces), the same stop reason and usage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from mianzhang.auth import hash_api_key
from tests._support.procs import ServerProcess, serve_process

from .test_llm_anthropic import KEY, TOOL_SCRIPT, WEATHER_TOOL, script, server_env

pytestmark = pytest.mark.e2e

FRONT_MODELS = {
    "via-messages": {"provider": "anthropic", "upstream": "back", "upstream_model": "scripted"},
    "via-chat": {"provider": "openai", "upstream": "back", "upstream_model": "scripted"},
}
CHAT_TOOL = {
    "type": "function",
    "function": {"name": WEATHER_TOOL["name"], "parameters": WEATHER_TOOL["input_schema"]},
}


@pytest.fixture(scope="module")
def chain() -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """(back, front): the front's upstream is the back instance, with the back's key."""
    with serve_process(env=server_env()) as back:
        keys = {"front": {"digest": hash_api_key(KEY), "scopes": ["llm", "streams"]}}
        upstreams = {"back": {"base_url": f"{back.url}/v1", "api_key_env": "BACK_KEY"}}
        env = server_env(
            BACK_KEY=KEY,
            MIANZHANG_AUTH__API_KEYS=json.dumps(keys),
            MIANZHANG_LLM__MODELS=json.dumps(FRONT_MODELS),
            MIANZHANG_LLM__UPSTREAMS=json.dumps(upstreams),
            MIANZHANG_LLM__DEFAULT_MODEL="via-chat",
        )
        with serve_process(env=env) as front:
            yield back, front


async def anthropic_read(server: ServerProcess, model: str) -> dict[str, Any]:
    """One streamed tool-call turn through ``/v1/messages``: every event (message id and
    model left out: they name the instance) and the final message."""
    client = AsyncAnthropic(base_url=server.url, api_key=KEY, max_retries=0)
    events: list[dict[str, Any]] = []
    try:
        async with client.messages.stream(
            model=model,
            max_tokens=100,
            messages=[{"role": "user", "content": script(*TOOL_SCRIPT)}],
            tools=[WEATHER_TOOL],
        ) as stream:
            async for event in stream:
                if event.type in ("text", "input_json"):
                    continue  # the SDK's own helper events, derived from the raw ones
                events.append(event.model_dump(exclude={"message": {"id", "model"}}))
            final = (await stream.get_final_message()).model_dump(exclude={"id", "model"})
    finally:
        await client.close()
    return {"events": events, "final": final}


async def chat_read(server: ServerProcess, model: str) -> dict[str, Any]:
    """One streamed tool-call turn through ``/v1/chat/completions``: each chunk's choices
    and usage (ids and timestamps left out: they name the instance)."""
    client = AsyncOpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    chunks: list[dict[str, Any]] = []
    try:
        stream = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": script(*TOOL_SCRIPT)}],
            tools=[CHAT_TOOL],  # type: ignore[list-item]
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            dumped = chunk.model_dump(exclude_none=True)
            chunks.append({"choices": dumped["choices"], "usage": dumped.get("usage")})
    finally:
        await client.close()
    return {"chunks": chunks}


def tool_call_of(result: dict[str, Any]) -> tuple[str, str, list[str]]:
    """(id, name, argument pieces) of the tool call a read carries, in either API."""
    if "chunks" in result:
        deltas = [
            call
            for chunk in result["chunks"]
            for choice in chunk["choices"]
            for call in choice["delta"].get("tool_calls") or []
        ]
        pieces = [d["function"]["arguments"] for d in deltas if d["function"].get("arguments")]
        return deltas[0]["id"], deltas[0]["function"]["name"], pieces
    block = result["final"]["content"][1]
    pieces = [
        e["delta"]["partial_json"]
        for e in result["events"]
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    ]
    return block["id"], block["name"], pieces


READS = {"messages": anthropic_read, "chat": chat_read}


@pytest.mark.parametrize("api", list(READS))
@pytest.mark.parametrize("front_model", list(FRONT_MODELS))
async def test_a_streamed_tool_call_crosses_both_hops_unchanged(
    chain: tuple[ServerProcess, ServerProcess], api: str, front_model: str
) -> None:
    back, front = chain
    direct = await READS[api](back, "scripted")
    through = await READS[api](front, front_model)
    call_id, name, pieces = tool_call_of(direct)
    assert name == "get_weather" and json.loads("".join(pieces)) == {"city": "Paris"}
    assert len(pieces) == 4
    assert tool_call_of(through) == (call_id, name, pieces)
    assert through == direct
