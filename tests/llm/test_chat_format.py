"""Chat Completions chunks: OpenAI's exact order and shape, passthrough, errors, stream:false."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mianzhang.llm import (
    DONE,
    Cancelled,
    ChatChunkEncoder,
    ChatCompletionCollector,
    Chunk,
    Failed,
    Finished,
    GenEvent,
    Started,
    Timings,
    Token,
    UpstreamStatusError,
    Usage,
)

T = Timings(0.1, 0.5, 2)


USAGE = Usage(4, 2)


def finished(usage: Usage = USAGE) -> Finished:
    return Finished("stop", usage, T, provider="demo", upstream_model="m", usage_reported=True)


def run(events: list[GenEvent], include_usage: bool = False) -> list[str]:
    """The payloads of ``events``; the surface's closing ``[DONE]`` after a terminal event."""
    enc = ChatChunkEncoder(
        completion_id="chatcmpl-1", model="demo", created=7, include_usage=include_usage
    )
    out: list[str] = []
    for event in events:
        wire = enc.encode(event)
        if isinstance(event, Finished | Failed | Cancelled):
            wire += enc.end()
        assert all(name is None for name, _ in wire)
        out += [data for _, data in wire]
    return out


def loads(payloads: list[str]) -> list[Any]:
    return [orjson.loads(p) for p in payloads if p != DONE]


def test_built_chunks_follow_openai_order() -> None:
    out = run(
        [
            Started("demo", 7),
            Token(Chunk(text="Hel")),
            Token(Chunk(text="lo")),
            Token(Chunk(finish_reason="stop")),
            finished(),
        ]
    )
    assert out[-1] == DONE
    chunks = loads(out)
    assert all(
        c["object"] == "chat.completion.chunk"
        and c["id"] == "chatcmpl-1"
        and c["model"] == "demo"
        and c["created"] == 7
        for c in chunks
    )
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": "Hel"},
        {"content": "lo"},
        {"content": ""},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "stop"]
    assert all("usage" not in c for c in chunks)


def test_include_usage_adds_a_usage_chunk_with_empty_choices() -> None:
    out = run(
        [Started("demo", 7), Token(Chunk(text="a")), finished(Usage(4, 1))], include_usage=True
    )
    chunks = loads(out)
    assert chunks[0]["usage"] is None
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"  # synthesised finish chunk
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}
    assert out[-1] == DONE


def test_raw_upstream_chunks_pass_through_byte_for_byte() -> None:
    raws = [
        '{"id":"up","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}',
        '{"id":"up","choices":[{"index":0,"delta":{"content":"x"}}]}',
        '{"id":"up","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
        '{"id":"up","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}',
    ]
    events: list[GenEvent] = [
        Token(Chunk(role="assistant", raw=raws[0])),
        Token(Chunk(text="x", raw=raws[1])),
        Token(Chunk(finish_reason="stop", raw=raws[2])),
        Token(Chunk(usage=Usage(1, 1), raw=raws[3])),
        finished(Usage(1, 1)),
    ]
    assert run(events) == [*raws[:3], DONE]  # usage-only chunk dropped: not asked for
    assert run(events, include_usage=True) == [*raws, DONE]  # passed, not duplicated


def test_null_usage_the_gateway_asked_for_is_removed_when_the_client_did_not_ask() -> None:
    raw = '{"id":"up","choices":[{"index":0,"delta":{"content":"x"}}],"usage":null}'
    assert run([Token(Chunk(text="x", raw=raw))]) == [
        '{"id":"up","choices":[{"index":0,"delta":{"content":"x"}}]}'
    ]
    assert run([Token(Chunk(text="x", raw=raw))], include_usage=True) == [raw]


def test_include_usage_is_synthesised_when_the_upstream_gave_none() -> None:
    raw = '{"id":"up","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}'
    out = run(
        [Token(Chunk(text="x", finish_reason="stop", raw=raw)), finished(Usage(2, 1))],
        include_usage=True,
    )
    assert out[0] == raw
    assert orjson.loads(out[1])["usage"]["completion_tokens"] == 1 and out[2] == DONE


def test_failure_is_an_openai_error_payload_then_done() -> None:
    err = UpstreamStatusError(503, "upstream HTTP 503: busy", retryable=True)
    out = run([Token(Chunk(text="a")), Failed(err, Usage(1, 1), T, partial=True)])
    assert out[-1] == DONE
    body = orjson.loads(out[-2])
    assert body == {
        "error": {
            "message": "upstream HTTP 503: busy",
            "type": "upstream_error",
            "param": None,
            "code": "upstream_503",
        }
    }


def test_a_cancellation_is_an_error_payload_with_code_cancelled_then_done() -> None:
    out = run([Token(Chunk(text="a")), Cancelled("stopped", Usage(1, 1), T, partial=True)])
    assert out[-1] == DONE
    error = orjson.loads(out[-2])["error"]
    assert error["code"] == "cancelled" and "stopped" in error["message"]


def test_reasoning_of_other_providers_goes_in_reasoning_content() -> None:
    out = run([Token(Chunk(reasoning="hmm")), Token(Chunk(text="yes")), finished()])
    deltas = [c["choices"][0]["delta"] for c in loads(out)]
    assert deltas[0] == {"role": "assistant", "content": "", "reasoning_content": "hmm"}
    assert deltas[1] == {"content": "yes"}


def test_collector_builds_a_chat_completion_and_merges_tool_calls() -> None:
    col = ChatCompletionCollector(completion_id="chatcmpl-2", model="demo", created=3)
    calls1 = [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get", "arguments": '{"a"'},
        }
    ]
    calls2 = [{"index": 0, "function": {"arguments": ": 1}"}}]
    for e in [
        Started("demo", 3),
        Token(Chunk(text="He")),
        Token(Chunk(text="y")),
        Token(Chunk(tool_calls=calls1)),
        Token(Chunk(tool_calls=calls2)),
        finished(),
    ]:
        col.add(e)
    result = col.result()
    assert result["object"] == "chat.completion"
    message = result["choices"][0]["message"]
    assert message["content"] == "Hey"
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"a": 1}'}}
    ]
    assert result["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}


def test_collector_raises_the_error_of_a_failed_generation() -> None:
    col = ChatCompletionCollector(completion_id="c", model="m", created=0)
    err = UpstreamStatusError(500, "x", retryable=True)
    col.add(Failed(err, Usage(), T, partial=False))
    with pytest.raises(UpstreamStatusError):
        col.result()
