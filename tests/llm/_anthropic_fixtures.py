"""Messages API streams in the shape Anthropic sends them (event names, field order, the
first empty ``input_json_delta``, ``ping`` after the first block start, ``signature_delta``
closing a thinking block, cache fields in usage), for the parser, the round trips and the
fake upstream."""

from __future__ import annotations

from typing import Any

import orjson

Event = tuple[str, dict[str, Any]]


def _start(model: str = "claude-test", input_tokens: int = 25) -> Event:
    return (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_01upstream",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": input_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        },
    )


def _block(index: int, block: dict[str, Any]) -> Event:
    return (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def _delta(index: int, delta: dict[str, Any]) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def _stop(index: int) -> Event:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def _end(stop_reason: str, output_tokens: int, stop_sequence: str | None = None) -> list[Event]:
    return [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


PING: Event = ("ping", {"type": "ping"})


def text(*pieces: str, stop_reason: str = "end_turn") -> list[Event]:
    return [
        _start(),
        _block(0, {"type": "text", "text": ""}),
        PING,
        *(_delta(0, {"type": "text_delta", "text": p}) for p in pieces),
        _stop(0),
        *_end(stop_reason, 15),
    ]


TOOL_USE: list[Event] = [
    _start(input_tokens=472),
    _block(0, {"type": "text", "text": ""}),
    PING,
    _delta(0, {"type": "text_delta", "text": "Okay, let me check"}),
    _delta(0, {"type": "text_delta", "text": " the weather."}),
    _stop(0),
    _block(1, {"type": "tool_use", "id": "toolu_01T1x", "name": "get_weather", "input": {}}),
    _delta(1, {"type": "input_json_delta", "partial_json": ""}),
    _delta(1, {"type": "input_json_delta", "partial_json": '{"location":'}),
    _delta(1, {"type": "input_json_delta", "partial_json": ' "San Francisco, CA"}'}),
    _stop(1),
    _block(2, {"type": "tool_use", "id": "toolu_01T2y", "name": "get_time", "input": {}}),
    _delta(2, {"type": "input_json_delta", "partial_json": '{"tz": "PST"}'}),
    _stop(2),
    *_end("tool_use", 89),
]

THINKING: list[Event] = [
    _start(),
    _block(0, {"type": "thinking", "thinking": "", "signature": ""}),
    _delta(0, {"type": "thinking_delta", "thinking": "Let me solve this step by step."}),
    _delta(0, {"type": "thinking_delta", "thinking": "\n\n27 * 453 = 12231"}),
    _delta(0, {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"}),
    _stop(0),
    _block(1, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}),
    _stop(1),
    _block(2, {"type": "text", "text": ""}),
    _delta(2, {"type": "text_delta", "text": "27 * 453 = 12,231"}),
    _stop(2),
    *_end("end_turn", 120),
]

ERROR_MID_STREAM: list[Event] = [
    *text("Partial answer")[:4],
    ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
]

STREAMS: dict[str, list[Event]] = {
    "text": text("Hello", ", world", "!"),
    "max_tokens": text("Cut sh", stop_reason="max_tokens"),
    "stop_sequence": [*text("one two")[:-2], *_end("stop_sequence", 3, "three")],
    "tool_use": TOOL_USE,
    "thinking": THINKING,
}


def sse(events: list[Event]) -> bytes:
    return b"".join(
        f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n" for name, data in events
    )
