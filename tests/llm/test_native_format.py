"""The native UI stream: start, content, reasoning, tool calls, progress, complete / error."""

from __future__ import annotations

import orjson

from mianzhang.llm import (
    Cancelled,
    Chunk,
    Failed,
    Finished,
    GenerationCancelled,
    NativeEncoder,
    Started,
    Timings,
    Token,
    Usage,
)

T = Timings(0.25, 1.25, 11)


def encoder() -> NativeEncoder:
    return NativeEncoder(stream_id="s1", model="demo", progress_every=4)


def test_event_sequence_with_progress_and_complete() -> None:
    enc = encoder()
    out = enc.encode(Started("demo", 9, "demo", "d"))
    for i in range(9):  # the gateway's clock of each token: first at 0.25 s, then every 0.1 s
        out += enc.encode(Token(Chunk(text=f"t{i}"), 0.25 + 0.1 * i))
    out += enc.encode(Token(Chunk(finish_reason="stop")))
    out += enc.encode(
        Finished(
            "stop", Usage(2, 9), T, provider="demo", upstream_model="demo", usage_reported=True
        )
    )
    names = [n for n, _ in out]
    assert names == [
        "start",
        *(["content"] * 4),
        "progress",
        *(["content"] * 4),
        "progress",
        "content",
        "complete",
    ]
    start = orjson.loads(out[0][1])
    assert start == {
        "stream_id": "s1",
        "model": "demo",
        "provider": "demo",
        "demo": True,
        "description": "d",
        "created": 9,
    }
    progress = orjson.loads(out[5][1])
    assert progress["output_tokens"] == 4 and progress["duration_ms"] == 550.0
    assert progress["time_to_first_token_ms"] == 250.0 and progress["tokens_per_second"] == 10.0
    complete = orjson.loads(out[-1][1])
    assert complete["usage"] == {
        "prompt_tokens": 2,
        "completion_tokens": 9,
        "total_tokens": 11,
        "estimated": False,
    }
    assert complete["finish_reason"] == "stop" and enc.ended


def test_progress_counts_the_usage_the_upstream_reported() -> None:
    enc = encoder()
    enc.encode(Started("demo", 9))
    enc.encode(Token(Chunk(usage=Usage(1, 7)), 0.5))  # an upstream reporting usage early
    out = []
    for i in range(4):
        out += enc.encode(Token(Chunk(text="x"), 0.5 + i))
    progress = orjson.loads(out[-1][1])
    assert progress["output_tokens"] == 4 and progress["tokens_per_second"] == 2.0  # (7-1)/3


def test_error_and_cancel_events() -> None:
    enc = encoder()
    assert orjson.loads(enc.encode(Started("demo", 1, "openai"))[0][1])["demo"] is False
    out = enc.encode(
        Failed(GenerationCancelled("stop"), Usage(1, 3, estimated=True), T, partial=True)
    )
    name, data = out[0]
    body = orjson.loads(data)
    assert name == "error" and body["error"]["code"] == "cancelled" and body["partial"] is True
    assert body["usage"]["estimated"] is True
    assert enc.end() == []
    cancelled = encoder().encode(Cancelled("abandoned", Usage(1, 0), T, partial=False))
    body = orjson.loads(cancelled[0][1])
    assert cancelled[0][0] == "error" and body["error"]["code"] == "cancelled"
    assert "abandoned" in body["error"]["message"] and body["partial"] is False


def test_reasoning_and_tool_calls_have_their_own_events() -> None:
    enc = encoder()
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}
    more = {"index": 0, "function": {"arguments": '{"a":1}'}}
    out = enc.encode(Token(Chunk(reasoning="think")))
    out += enc.encode(Token(Chunk(tool_calls=[call]))) + enc.encode(Token(Chunk(tool_calls=[more])))
    assert [(n, orjson.loads(d)) for n, d in out] == [
        ("reasoning", {"text": "think"}),
        ("tool_call", {"index": 0, "id": "call_1", "name": "f", "arguments": ""}),
        ("tool_call", {"index": 0, "arguments": '{"a":1}'}),
    ]
