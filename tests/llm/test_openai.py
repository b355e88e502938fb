"""The OpenAI-compatible provider: passthrough, error translation, closing the upstream."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from mianzhang.llm import (
    ChatRequest,
    Chunk,
    OpenAIProvider,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
    Usage,
)

from ._fakes import Upstream, chunk_json, sse

REQUEST = ChatRequest(
    messages=[{"role": "user", "content": "hi"}], max_tokens=5, params={"temperature": 0.2}
)


def provider(upstream: Upstream, **kwargs: object) -> OpenAIProvider:
    return OpenAIProvider(
        "http://up.test/v1", api_key="sk-test", transport=upstream.transport(), **kwargs
    )  # type: ignore[arg-type]


async def chunks_of(up: Upstream, model: str = "m") -> list[Chunk]:
    """Everything the provider yields for one streamed request to ``up`` (provider closed)."""
    p = provider(up)
    try:
        return [c async for c in p.stream(model, REQUEST)]
    finally:
        await p.aclose()


async def test_chunks_pass_through_verbatim_and_the_request_is_openai_shaped() -> None:
    payloads = [
        chunk_json(role=True, content=""),
        chunk_json("Hel"),
        chunk_json("lo"),
        chunk_json(finish="stop"),
        chunk_json(
            choices=False, usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        ),
    ]
    up = Upstream([])
    up.responses.append(up.stream([*sse(*payloads), b"data: [DONE]\n\n"]))
    chunks = await chunks_of(up, "gpt-up")
    assert [c.raw for c in chunks] == [orjson.dumps(x).decode() for x in payloads]
    assert "".join(c.text for c in chunks) == "Hello"
    assert chunks[0].role == "assistant"
    assert chunks[3].finish_reason == "stop"
    assert chunks[4].usage == Usage(3, 2)
    req = up.requests[0]
    assert req.url == "http://up.test/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-test"
    body = orjson.loads(req.content)
    assert body == {
        "temperature": 0.2,
        "model": "gpt-up",
        "messages": REQUEST.messages,
        "stream": True,
        "max_tokens": 5,
        "stream_options": {"include_usage": True},
    }


async def test_include_usage_can_be_turned_off() -> None:
    up = Upstream([])
    up.responses.append(up.stream([*sse(chunk_json("x", finish="stop")), b"data: [DONE]\n\n"]))
    p = provider(up, include_usage=False)
    try:
        [c async for c in p.stream("m", REQUEST)]
    finally:
        await p.aclose()
    assert "stream_options" not in orjson.loads(up.requests[0].content)


async def test_events_split_across_network_chunks_are_reassembled() -> None:
    whole = b"".join([*sse(chunk_json("ab"), chunk_json("c", finish="stop")), b"data: [DONE]\n\n"])
    parts = [whole[i : i + 7] for i in range(0, len(whole), 7)]
    up = Upstream([])
    up.responses.append(up.stream(parts))
    chunks = await chunks_of(up)
    assert "".join(c.text for c in chunks) == "abc"


@pytest.mark.parametrize(
    ("code", "retryable"),
    [(500, True), (429, True), (408, True), (409, True), (400, False), (401, False)],
)
async def test_status_errors_are_translated(code: int, retryable: bool) -> None:
    up = Upstream(
        [Upstream.error(code, {"error": {"message": "nope"}}, headers={"retry-after-ms": "1500"})]
    )
    p = provider(up)
    try:
        with pytest.raises(UpstreamStatusError) as info:
            [c async for c in p.stream("m", REQUEST)]
    finally:
        await p.aclose()
    assert info.value.status_code == code
    assert info.value.retryable is retryable
    assert info.value.retry_after == 1.5
    assert "nope" in str(info.value)


async def test_connect_errors_and_timeouts_are_translated() -> None:
    up = Upstream([httpx.ConnectError("refused"), httpx.ConnectTimeout("slow")])
    p = provider(up)
    try:
        with pytest.raises(UpstreamConnectError):
            [c async for c in p.stream("m", REQUEST)]
        with pytest.raises(UpstreamTimeout):
            [c async for c in p.stream("m", REQUEST)]
    finally:
        await p.aclose()


async def test_stream_ending_before_done_is_a_protocol_error() -> None:
    up = Upstream([])
    up.responses.append(up.stream(sse(chunk_json("a"))))
    p = provider(up)
    try:
        it = p.stream("m", REQUEST)
        assert (await anext(it)).text == "a"
        with pytest.raises(UpstreamProtocolError):
            await anext(it)
    finally:
        await p.aclose()


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        pytest.param(
            [*sse(chunk_json("a")), httpx.ReadError("reset")],
            UpstreamProtocolError,
            None,
            id="stream-breaking-off-is-a-protocol-error",
        ),
        pytest.param(
            sse({"error": {"message": "overloaded"}}),
            UpstreamError,
            "overloaded",
            id="error-payload-inside-the-stream-is-an-upstream-error",
        ),
        pytest.param(
            [b"data: {not json\n\n"],
            UpstreamProtocolError,
            None,
            id="garbage-chunk-is-a-protocol-error",
        ),
    ],
)
async def test_a_bad_stream_body_is_a_typed_error(
    body: list[Any], error: type[Exception], match: str | None
) -> None:
    up = Upstream([])
    up.responses.append(up.stream(body))
    p = provider(up)
    try:
        with pytest.raises(error, match=match):
            [c async for c in p.stream("m", REQUEST)]
    finally:
        await p.aclose()


async def test_eof_after_finish_reason_without_done_is_accepted() -> None:
    up = Upstream([])
    up.responses.append(up.stream(sse(chunk_json("a", finish="stop"))))
    chunks = await chunks_of(up)
    assert chunks[-1].finish_reason == "stop"


async def test_closing_the_iterator_closes_the_upstream_response() -> None:
    hold = asyncio.Event()
    up = Upstream([])
    up.responses.append(up.stream([*sse(chunk_json("a")), hold]))
    p = provider(up)
    try:
        it = p.stream("m", REQUEST)
        assert (await anext(it)).text == "a"
        await it.aclose()  # type: ignore[attr-defined]
        assert up.bodies[0].closed.is_set()
    finally:
        await p.aclose()


async def test_body_after_done_is_drained_so_the_connection_can_be_reused() -> None:
    up = Upstream([])
    up.responses.append(
        up.stream([*sse(chunk_json("a", finish="stop")), b"data: [DONE]\n\n", b"\n"])
    )
    chunks = await chunks_of(up)
    assert chunks[-1].finish_reason == "stop"
    assert up.bodies[0].consumed == 3  # read to the end, not abandoned after [DONE]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_deltas_become_chunk_reasoning_and_pass_through_unchanged(
    field: str,
) -> None:
    def delta(**fields: object) -> dict[str, object]:
        body = chunk_json()
        body["choices"] = [{"index": 0, "delta": fields, "finish_reason": None}]
        return body

    payloads = [
        chunk_json(role=True, content=""),
        delta(**{field: "Let me"}),
        delta(**{field: " think."}),
        delta(content="Hi", **{field: None}),  # vLLM sends a null reasoning with the answer
        chunk_json(finish="stop"),
    ]
    up = Upstream([])
    up.responses.append(up.stream([*sse(*payloads), b"data: [DONE]\n\n"]))
    chunks = await chunks_of(up)
    assert [c.raw for c in chunks] == [orjson.dumps(x).decode() for x in payloads]
    assert [c.reasoning for c in chunks] == ["", "Let me", " think.", "", ""]
    assert [c.text for c in chunks] == ["", "", "", "Hi", ""]
    assert chunks[1].is_token  # reasoning alone is output a client sees
