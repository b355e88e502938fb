"""The native UI stream: start, content, progress, complete / error."""

from __future__ import annotations

import orjson

from mianzhang.llm import (
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


def encoder(provider: str = "demo") -> NativeEncoder:
    return NativeEncoder(
        stream_id="s1",
        model="demo",
        provider=provider,
        description="d",
        timings=lambda: T,
        progress_every=4,
    )


def test_event_sequence_with_progress_and_complete() -> None:
    enc = encoder()
    out = enc.encode(Started("demo", 9))
    for i in range(9):
        out += enc.encode(Token(Chunk(text=f"t{i}")))
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
    assert progress["output_tokens"] == 4
    assert progress["time_to_first_token_ms"] == 250.0 and progress["tokens_per_second"] == 10.0
    complete = orjson.loads(out[-1][1])
    assert complete["usage"] == {
        "prompt_tokens": 2,
        "completion_tokens": 9,
        "total_tokens": 11,
        "estimated": False,
    }
    assert complete["finish_reason"] == "stop" and enc.ended


def test_error_and_cancel_events() -> None:
    enc = encoder("openai")
    assert orjson.loads(enc.encode(Started("demo", 1))[0][1])["demo"] is False
    out = enc.encode(
        Failed(GenerationCancelled("stop"), Usage(1, 3, estimated=True), T, partial=True)
    )
    name, data = out[0]
    body = orjson.loads(data)
    assert name == "error" and body["error"]["code"] == "cancelled" and body["partial"] is True
    assert body["usage"]["estimated"] is True
