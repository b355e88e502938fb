"""The ``anthropic`` provider against a fake Messages API upstream running in a real uvicorn
process (recorded-shape streams, an error event mid-stream, error statuses, a slow stream),
over both HTTP clients; and through the gateway to the ``anthropic`` surface, read by the
real SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import orjson
import pytest

from mianzhang._errors import UpstreamStreamError, UpstreamUnsupported
from mianzhang.llm import (
    ChatRequest,
    Chunk,
    Gateway,
    ModelEntry,
    ModelRegistry,
    Provider,
    RetryPolicy,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamStatusError,
    Usage,
)
from mianzhang.llm._anthropic import ANTHROPIC_VERSION, AnthropicProvider
from tests._support.procs import ServerProcess, free_port, uvicorn_process
from tests._support.wait import eventually

from ._anthropic_sdk import encode_all, sdk_final_message

REQUEST = ChatRequest(
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    max_tokens=256,
    params={"temperature": 0.2, "stop": "END"},
)


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServerProcess]:
    with uvicorn_process("tests.e2e.apps.fake_anthropic:app") as proc:
        yield proc


@pytest.fixture(params=["fast", "httpx"])
async def provider(
    request: pytest.FixtureRequest, upstream: ServerProcess
) -> AsyncIterator[AnthropicProvider]:
    p = AnthropicProvider(upstream.url + "/v1", api_key="sk-ant-test", client=request.param)
    try:
        yield p
    finally:
        await p.aclose()


async def recorded(upstream: ServerProcess) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(upstream.url + "/_requests")
    requests: list[dict[str, Any]] = response.json()["requests"]
    return requests


async def collect(p: AnthropicProvider, model: str, request: ChatRequest = REQUEST) -> list[Chunk]:
    return [c async for c in p.stream(model, request)]


def merged_tool_calls(chunks: list[Chunk]) -> list[dict[str, Any]]:
    """OpenAI tool-call deltas merged by index, as a chat client does."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for delta in chunk.tool_calls or ():
            call = calls.setdefault(delta["index"], {"function": {"name": "", "arguments": ""}})
            for key in ("id", "type"):
                if key in delta:
                    call[key] = delta[key]
            call["function"]["name"] += delta["function"].get("name") or ""
            call["function"]["arguments"] += delta["function"].get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


# -- streams ----------------------------------------------------------------------------------
async def test_a_text_stream_and_the_request_sent(
    provider: AnthropicProvider, upstream: ServerProcess
) -> None:
    chunks = await collect(provider, "text")
    assert "".join(c.text for c in chunks) == "Hello, world!"
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage == Usage(25, 15)
    assert all(c.raw is None for c in chunks)  # never passed through as chat chunks
    sent = (await recorded(upstream))[-1]
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == "sk-ant-test"
    assert sent["headers"]["anthropic-version"] == ANTHROPIC_VERSION
    assert sent["body"] == {
        "model": "text",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "hi"}],
        "system": "Be brief.",
        "temperature": 0.2,
        "stop_sequences": ["END"],
        "stream": True,
    }
    assert sent["completed"]


async def test_tool_use_becomes_openai_tool_calls(provider: AnthropicProvider) -> None:
    chunks = await collect(provider, "tool_use")
    assert "".join(c.text for c in chunks) == "Okay, let me check the weather."
    assert merged_tool_calls(chunks) == [
        {
            "id": "toolu_01T1x",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location": "San Francisco, CA"}'},
        },
        {
            "id": "toolu_01T2y",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"tz": "PST"}'},
        },
    ]
    assert chunks[-1].finish_reason == "tool_calls"
    assert chunks[-1].usage == Usage(472, 89)


async def test_thinking_becomes_reasoning(provider: AnthropicProvider) -> None:
    chunks = await collect(provider, "thinking")
    assert "".join(c.reasoning for c in chunks) == (
        "Let me solve this step by step.\n\n27 * 453 = 12231"
    )
    assert "".join(c.text for c in chunks) == "27 * 453 = 12,231"
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]


@pytest.mark.parametrize(("model", "finish"), [("max_tokens", "length"), ("stop_sequence", "stop")])
async def test_stop_reasons_become_finish_reasons(
    provider: AnthropicProvider, model: str, finish: str
) -> None:
    chunks = await collect(provider, model)
    assert chunks[-1].finish_reason == finish


async def test_an_error_event_mid_stream_is_a_retryable_stream_error(
    provider: AnthropicProvider,
) -> None:
    it = provider.stream("error-mid", REQUEST)
    got: list[Chunk] = []
    with pytest.raises(UpstreamStreamError) as info:
        async for chunk in it:
            got.append(chunk)
    assert "".join(c.text for c in got) == "Partial answer"
    assert info.value.error_type == "overloaded_error"
    assert info.value.status_code == 529
    assert info.value.retryable is True
    assert "Overloaded" in str(info.value)


@pytest.mark.parametrize(
    ("status", "retryable", "retry_after"),
    [
        (400, False, None),
        (401, False, None),
        (429, True, 3.0),
        (500, True, None),
        (529, True, None),
    ],
)
async def test_error_statuses_are_translated(
    provider: AnthropicProvider, status: int, retryable: bool, retry_after: float | None
) -> None:
    with pytest.raises(UpstreamStatusError) as info:
        await collect(provider, f"status-{status}")
    error = info.value
    assert error.status_code == status
    assert error.retryable is retryable
    assert error.retry_after == retry_after
    assert f"fake {status}" in str(error)
    assert orjson.loads(error.body)["type"] == "error"


async def test_a_stream_ending_before_message_stop_is_a_protocol_error(
    provider: AnthropicProvider,
) -> None:
    with pytest.raises(UpstreamProtocolError):
        await collect(provider, "truncated")


async def test_closing_the_iterator_closes_the_upstream_request(
    provider: AnthropicProvider, upstream: ServerProcess
) -> None:
    it = provider.stream("slow", REQUEST)
    texts = [(await anext(it)).text for _ in range(3)]
    assert texts == ["tick", "tick", "tick"]
    await it.aclose()  # type: ignore[attr-defined]

    async def disconnected() -> bool:
        return bool((await recorded(upstream))[-1]["disconnected"])

    await eventually(disconnected)


async def test_a_request_that_cannot_be_expressed_is_refused_before_sending(
    provider: AnthropicProvider, upstream: ServerProcess
) -> None:
    before = len(await recorded(upstream))
    audio = {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}}
    request = ChatRequest(messages=[{"role": "user", "content": [audio]}])
    with pytest.raises(UpstreamUnsupported) as info:
        await collect(provider, "text", request)
    assert info.value.retryable is False
    assert len(await recorded(upstream)) == before


async def test_a_refused_connection_is_a_connect_error() -> None:
    p = AnthropicProvider(f"http://127.0.0.1:{free_port()}/v1", connect_timeout=2)
    try:
        with pytest.raises(UpstreamConnectError):
            await collect(p, "text")
    finally:
        await p.aclose()


# -- options over an injected transport -------------------------------------------------------
async def test_version_headers_and_the_default_max_tokens() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            429, json={"type": "error", "error": {"type": "rate_limit_error", "message": "x"}}
        )

    p = AnthropicProvider(
        "http://up.test/v1",
        anthropic_version="2099-01-01",
        headers={"anthropic-beta": "feature-1"},
        default_max_tokens=77,
        transport=httpx.MockTransport(handler),
    )
    try:
        assert p.client == "httpx"
        assert isinstance(p, Provider)
        with pytest.raises(UpstreamStatusError):
            await collect(p, "m", ChatRequest([{"role": "user", "content": "hi"}]))
    finally:
        await p.aclose()
    assert seen[0].headers["anthropic-version"] == "2099-01-01"
    assert seen[0].headers["anthropic-beta"] == "feature-1"
    assert "x-api-key" not in seen[0].headers
    assert orjson.loads(seen[0].content)["max_tokens"] == 77


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError):
        AnthropicProvider("http://up.test/v1", default_max_tokens=0)
    with pytest.raises(ValueError):
        AnthropicProvider(
            "http://up.test/v1",
            client="fast",
            transport=httpx.MockTransport(lambda r: httpx.Response(200)),
        )


# -- through the gateway to the anthropic surface ---------------------------------------------
@pytest.mark.parametrize("model", ["tool_use", "thinking", "text"])
async def test_a_generation_relayed_by_the_gateway_reads_like_the_upstream(
    upstream: ServerProcess, model: str
) -> None:
    p = AnthropicProvider(upstream.url + "/v1", api_key="k")
    gateway = Gateway(
        ModelRegistry([ModelEntry("claude", p, model)], default_model="claude"),
        retry=RetryPolicy(max_retries=0),
    )
    try:
        events = [e async for e in gateway.start("claude", REQUEST).events()]
    finally:
        await gateway.registry.aclose()
    relayed = await sdk_final_message(encode_all(events))
    direct_client = anthropic.AsyncAnthropic(api_key="k", base_url=upstream.url, max_retries=0)
    try:
        async with direct_client.messages.stream(
            model=model, max_tokens=256, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            direct = await stream.get_final_message()
    finally:
        await direct_client.close()

    def comparable(message: anthropic.types.Message) -> Any:
        blocks = [b.to_dict() for b in message.content if b.type != "redacted_thinking"]
        for block in blocks:
            block.pop("signature", None)
        return blocks, message.stop_reason, message.usage.input_tokens, message.usage.output_tokens

    assert comparable(relayed) == comparable(direct)
