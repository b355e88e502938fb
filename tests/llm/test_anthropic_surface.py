"""The ``anthropic`` surface: wire events as the Messages API sends them, checked by feeding
them to the real ``anthropic`` SDK's stream parser and accumulator."""

from __future__ import annotations

from typing import Any

import anthropic
import orjson
import pytest
from anthropic.types import (
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
)

from mianzhang._errors import UpstreamStreamError
from mianzhang.llm import (
    Chunk,
    GenerationCancelled,
    LLMError,
    Started,
    UpstreamStatusError,
    UpstreamTimeout,
    Usage,
)
from mianzhang.llm._anthropic_surface import (
    AnthropicEncoder,
    AnthropicMessageCollector,
    AnthropicSurface,
    message_id,
)
from mianzhang.llm._surface import SurfaceContext
from mianzhang.llm._types import GenEvent

from ._anthropic_sdk import (
    REQUEST,
    call,
    cancelled,
    client_for,
    encode_all,
    failed,
    finished,
    payloads,
    sdk_events,
    sdk_final_message,
    sse_bytes,
    tokens,
)

CONTEXT = SurfaceContext("msg_test", "m", 1, {"input_tokens": 9})

INTERLEAVED: list[GenEvent] = [
    *tokens(
        Chunk(reasoning="Let me "),
        Chunk(reasoning="think."),
        Chunk(text="I'll call "),
        Chunk(text="two tools."),
        call(0, id="call_a", name="get_weather", args=""),
        call(0, args='{"city": '),
        call(0, args='"Paris"}'),
        call(1, id="call_b", name="get_time", args='{"tz": "CET"}'),
    ),
    finished("tool_calls", Usage(9, 20)),
]


# -- the wire shape ---------------------------------------------------------------------------
def test_a_text_answer_is_the_messages_api_event_sequence() -> None:
    wire = encode_all([*tokens(Chunk(text="Hel"), Chunk(text="lo")), finished()], CONTEXT)
    names = [name for name, _ in wire]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    objs = payloads(wire)
    assert [o["type"] for o in objs] == names  # every event is named by its type
    assert objs[0]["message"] == {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 9, "output_tokens": 0},
    }
    assert objs[2] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert objs[3]["delta"] == {"type": "text_delta", "text": "Hel"}
    assert objs[6] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"input_tokens": 5, "output_tokens": 3},
    }
    assert encode_all([Started("m", 1)])[0][0] == "message_start"


def test_the_surface_names_itself_and_its_media_type() -> None:
    surface = AnthropicSurface()
    assert surface.name == "anthropic"
    assert surface.media_type == "text/event-stream"
    assert isinstance(surface.encoder(CONTEXT), AnthropicEncoder)
    assert surface.headers["cache-control"] == "no-cache"


def test_message_ids_have_the_msg_form() -> None:
    assert message_id("msg_01abc") == "msg_01abc"
    assert message_id("chatcmpl-7") == "msg_chatcmpl-7"


def test_interleaved_thinking_text_and_tool_calls_get_one_block_each_in_order() -> None:
    objs = payloads(encode_all(INTERLEAVED, CONTEXT))
    blocks = [(o["type"], o["index"]) for o in objs if o["type"].startswith("content_block_")]
    starts = [i for kind, i in blocks if kind == "content_block_start"]
    stops = [i for kind, i in blocks if kind == "content_block_stop"]
    assert starts == stops == [0, 1, 2, 3]
    # one block open at a time: each block stops before the next starts
    open_block: int | None = None
    for kind, index in blocks:
        if kind == "content_block_start":
            assert open_block is None
            open_block = index
        elif kind == "content_block_stop":
            assert open_block == index
            open_block = None
        else:
            assert open_block == index
    kinds = [o["content_block"]["type"] for o in objs if o["type"] == "content_block_start"]
    assert kinds == ["thinking", "text", "tool_use", "tool_use"]
    deltas = {o["delta"]["type"] for o in objs if o["type"] == "content_block_delta"}
    assert deltas == {"thinking_delta", "text_delta", "input_json_delta"}


async def test_the_sdk_accumulates_thinking_text_and_tool_inputs() -> None:
    message = await sdk_final_message(encode_all(INTERLEAVED, CONTEXT))
    assert message.id == "msg_test"
    assert message.model == "m"
    assert message.stop_reason == "tool_use"
    assert message.stop_sequence is None
    assert message.usage.input_tokens == 9
    assert message.usage.output_tokens == 20
    content = [block.to_dict() for block in message.content]
    assert content == [
        {"type": "thinking", "thinking": "Let me think.", "signature": ""},
        {"type": "text", "text": "I'll call two tools."},
        {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {"tz": "CET"}},
    ]


async def test_the_sdk_parses_every_event_into_its_typed_class() -> None:
    events = await sdk_events(encode_all(INTERLEAVED, CONTEXT))
    types = {type(e) for e in events}
    assert types == {
        RawMessageStartEvent,
        RawContentBlockStartEvent,
        RawContentBlockDeltaEvent,
        RawContentBlockStopEvent,
        RawMessageDeltaEvent,
        RawMessageStopEvent,
    }  # ping skipped by the SDK, nothing unknown


async def test_text_and_thinking_alternating_open_new_blocks() -> None:
    events = [
        *tokens(Chunk(reasoning="a"), Chunk(text="b"), Chunk(reasoning="c", text="d")),
        finished(),
    ]
    message = await sdk_final_message(encode_all(events))
    assert [
        (b.type, getattr(b, "text", None) or getattr(b, "thinking", None)) for b in message.content
    ] == [
        ("thinking", "a"),
        ("text", "b"),
        ("thinking", "c"),
        ("text", "d"),
    ]


async def test_a_tool_call_without_an_id_gets_a_deterministic_one() -> None:
    events = [*tokens(call(0, name="f", args="{}")), finished("tool_calls")]
    first = await sdk_final_message(encode_all(events))
    second = await sdk_final_message(encode_all(events))
    block = first.content[0]
    assert block.type == "tool_use"
    assert block.id == "toolu_msg_test_0"
    assert second.content[0].to_dict() == block.to_dict()


async def test_a_late_argument_piece_goes_to_its_own_block() -> None:
    events = [
        *tokens(
            call(0, id="a", name="f", args='{"x"'),
            call(1, id="b", name="g", args="{}"),
            call(0, args=": 1}"),
        ),
        finished("tool_calls"),
    ]
    message = await sdk_final_message(encode_all(events))
    assert [b.to_dict()["input"] for b in message.content] == [{"x": 1}, {}]


async def test_a_new_id_on_a_reused_index_starts_a_new_tool_block() -> None:
    events = [
        *tokens(
            call(0, id="a", name="f", args='{"n": 1}'),
            call(0, id="b", name="g", args='{"n": 2}'),
        ),
        finished("tool_calls"),
    ]
    message = await sdk_final_message(encode_all(events))
    assert [(b.to_dict()["id"], b.to_dict()["input"]) for b in message.content] == [
        ("a", {"n": 1}),
        ("b", {"n": 2}),
    ]


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        ("something_new", "end_turn"),
    ],
)
async def test_finish_reasons_become_stop_reasons(finish: str, stop_reason: str) -> None:
    message = await sdk_final_message(encode_all([*tokens(Chunk(text="x")), finished(finish)]))
    assert message.stop_reason == stop_reason


async def test_usage_in_message_delta_corrects_the_estimate_of_message_start() -> None:
    wire = encode_all([*tokens(Chunk(text="x")), finished(usage=Usage(40, 2))], CONTEXT)
    assert payloads(wire)[0]["message"]["usage"]["input_tokens"] == 9
    message = await sdk_final_message(wire)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (40, 2)


# -- failures and cancellation ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "error_type"),
    [
        (UpstreamStatusError(429, "slow down", retryable=True), "rate_limit_error"),
        (UpstreamStatusError(529, "overloaded", retryable=True), "overloaded_error"),
        (UpstreamStatusError(503, "unavailable", retryable=True), "overloaded_error"),
        (UpstreamStatusError(500, "boom", retryable=True), "api_error"),
        (UpstreamStatusError(401, "bad upstream key", retryable=False), "api_error"),
        (
            UpstreamStreamError("overloaded_error", "Overloaded", status_code=529),
            "overloaded_error",
        ),
        (UpstreamTimeout("stalled"), "timeout_error"),
    ],
)
async def test_a_failure_is_an_error_event_the_sdk_raises(error: LLMError, error_type: str) -> None:
    wire = encode_all([*tokens(Chunk(text="partial")), failed(error)])
    assert wire[-1][0] == "error"
    assert payloads(wire)[-1] == {
        "type": "error",
        "error": {"type": error_type, "message": str(error)},
    }
    client = client_for(sse_bytes(wire))
    try:
        async with client.messages.stream(**REQUEST) as stream:
            with pytest.raises(anthropic.APIStatusError) as info:
                await stream.get_final_message()
            partial = stream.current_message_snapshot
    finally:
        await client.close()
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == error_type
    assert [b.to_dict() for b in partial.content] == [{"type": "text", "text": "partial"}]


@pytest.mark.parametrize(
    ("reason", "error_type"),
    [
        ("stopped", "cancelled_error"),
        ("abandoned", "cancelled_error"),
        ("shutdown", "overloaded_error"),
    ],
)
async def test_a_cancelled_generation_ends_with_an_error_not_a_silent_stop(
    reason: str, error_type: str
) -> None:
    wire = encode_all([*tokens(Chunk(text="half")), cancelled(reason)])
    assert "message_stop" not in [name for name, _ in wire]
    events = payloads(wire)
    assert events[-1]["error"]["type"] == error_type
    assert reason in events[-1]["error"]["message"]
    client = client_for(sse_bytes(wire))
    try:
        with pytest.raises(anthropic.APIStatusError):
            await sdk_events_with(client)
    finally:
        await client.close()


async def sdk_events_with(client: anthropic.AsyncAnthropic) -> list[Any]:
    stream = await client.messages.create(**REQUEST, stream=True)
    return [event async for event in stream]


def test_a_failure_before_any_output_still_opens_the_message() -> None:
    wire = encode_all([Started("m", 1), failed(UpstreamTimeout("no first token"))])
    assert [name for name, _ in wire] == ["message_start", "ping", "error"]


def test_nothing_follows_the_terminal_event() -> None:
    encoder = AnthropicEncoder(CONTEXT)
    for event in [*tokens(Chunk(text="x")), finished()]:
        encoder.encode(event)
    assert encoder.encode(finished()) == []
    assert encoder.encode(cancelled()) == []
    assert encoder.end() == []


# -- purity: resume by replay -----------------------------------------------------------------
def test_a_fresh_encoder_fed_the_same_events_gives_the_same_wire_events() -> None:
    assert encode_all(INTERLEAVED, CONTEXT) == encode_all(INTERLEAVED, CONTEXT)


@pytest.mark.parametrize("cut", range(1, len(INTERLEAVED)))
def test_resuming_after_any_event_continues_exactly(cut: int) -> None:
    full: list[tuple[str | None, str]] = []
    per_event = []
    encoder = AnthropicEncoder(CONTEXT)
    for event in INTERLEAVED:
        out = encoder.encode(event)
        per_event.append(out)
        full += out
    resumed = AnthropicEncoder(CONTEXT)
    for event in INTERLEAVED[:cut]:
        resumed.encode(event)  # replayed to rebuild the state; output dropped
    tail = [w for event in INTERLEAVED[cut:] for w in resumed.encode(event)]
    assert tail == [w for out in per_event[cut:] for w in out]


# -- the non-streaming message ----------------------------------------------------------------
async def test_the_collected_message_equals_what_the_sdk_accumulates_from_the_stream() -> None:
    collector = AnthropicMessageCollector(CONTEXT)
    for event in INTERLEAVED:
        collector.add(event)
    message = collector.result()
    streamed = await sdk_final_message(encode_all(INTERLEAVED, CONTEXT))
    # the SDK sets the optional stop_details (None) from message_delta: compare without Nones
    assert _set(message) == _set(streamed.to_dict())
    client = client_for(orjson.dumps(message))
    try:
        created = await client.messages.create(**REQUEST)
    finally:
        await client.close()
    assert _set(created.to_dict()) == _set(streamed.to_dict())


def _set(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if v is not None}


def test_the_collector_raises_the_error_of_a_failed_or_cancelled_generation() -> None:
    error = UpstreamStatusError(529, "overloaded", retryable=True)
    collector = AnthropicMessageCollector(CONTEXT)
    for event in [*tokens(Chunk(text="x")), failed(error)]:
        collector.add(event)
    with pytest.raises(UpstreamStatusError):
        collector.result()
    collector = AnthropicMessageCollector(CONTEXT)
    for event in [*tokens(Chunk(text="x")), cancelled("stopped")]:
        collector.add(event)
    with pytest.raises(GenerationCancelled):
        collector.result()
    collector = AnthropicMessageCollector(CONTEXT)
    collector.add(Started("m", 1))
    with pytest.raises(RuntimeError):
        collector.result()


def test_tool_arguments_that_are_not_a_json_object_are_kept_as_text() -> None:
    collector = AnthropicMessageCollector(CONTEXT)
    for event in [
        *tokens(call(0, id="a", name="f", args="{oops"), call(1, id="b", name="g")),
        finished("tool_calls"),
    ]:
        collector.add(event)
    content = collector.result()["content"]
    assert content[0]["input"] == {"_invalid_json": "{oops"}
    assert content[1]["input"] == {}
