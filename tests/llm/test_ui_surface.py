"""The AI SDK UI message stream surface: exact chunks, purity, and the real ``ai`` package."""

from __future__ import annotations

from typing import Any

import pytest

from mianzhang.llm import UpstreamStatusError
from mianzhang.llm._types import Chunk, Failed, Finished, GenEvent, Started, Timings, Token, Usage
from mianzhang.llm._ui_surface import UIMessageStreamEncoder, UISurface, ui_finish_reason
from tests._support.node import run_node

from ._generations import cancelled, context, encode, generate, payloads, sse

UI = UISurface()
TIMINGS = Timings(0.5, 2.0, 3)
USAGE = Usage(7, 3)

SCRIPT: list[Any] = [
    {"reasoning": ["Thinking ", "hard."]},
    {"words": "It is sunny."},
    {"tool_call": {"name": "get_weather", "id": "call_w", "arguments": {"city": "Paris"}}},
]
WORDS = " ".join(f"w{i}" for i in range(40))
LONG: list[Any] = [  # 2 + 40 + 5 output tokens: progress after the 1st, 16th, 32nd
    {"reasoning": ["Thinking ", "hard."]},
    {"words": WORDS},
    {
        "tool_call": {
            "name": "get_weather",
            "id": "call_w",
            "arguments": {"city": "Paris"},
            "chunks": 4,
        }
    },
]


def finished(reason: str = "stop") -> Finished:
    return Finished(reason, USAGE, TIMINGS, "scripted", "scripted", usage_reported=True)


def chunks(events: list[GenEvent], **options: Any) -> list[Any]:
    return payloads(encode(UI, events, **options))


def progress(
    tokens: int, elapsed: float | None = None, first: float | None = None, rate: float | None = None
) -> dict[str, Any]:
    data = {
        "outputTokens": tokens,
        "elapsedMs": elapsed,
        "timeToFirstTokenMs": first,
        "tokensPerSecond": rate,
    }
    return {"type": "data-progress", "data": data, "transient": True}


def bare(out: list[Any]) -> list[Any]:
    """The chunks without our ``data-progress`` parts."""
    return [c for c in out if not (isinstance(c, dict) and c["type"] == "data-progress")]


METADATA = {
    "model": "scripted",
    "usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10},
    "timings": {"timeToFirstTokenMs": 500.0, "durationMs": 2000.0, "tokensPerSecond": 1.333},
}
DONE_STOP = {**METADATA, "finishReason": "stop"}
DONE_TOOLS = {**METADATA, "finishReason": "tool-calls"}


def test_surface_name_media_type_and_headers() -> None:
    assert UI.name == "ui" and UI.media_type == "text/event-stream"
    assert dict(UI.headers) == {
        "cache-control": "no-cache",
        "x-vercel-ai-ui-message-stream": "v1",
        "x-accel-buffering": "no",
    }


def test_a_text_answer() -> None:
    events: list[GenEvent] = [
        Started("scripted", 1),
        Token(Chunk(text="Hel"), 0.5),
        Token(Chunk(text="lo"), 0.75),
        Token(Chunk(finish_reason="stop", usage=USAGE), 0.75),
        finished(),
    ]
    assert chunks(events) == [
        {"type": "start", "messageId": "gen-1", "messageMetadata": {"model": "scripted"}},
        {"type": "start-step"},
        {"type": "text-start", "id": "text-1"},
        {"type": "text-delta", "id": "text-1", "delta": "Hel"},
        progress(1, elapsed=500.0, first=500.0),  # at once: the time to first token
        {"type": "text-delta", "id": "text-1", "delta": "lo"},
        {"type": "text-end", "id": "text-1"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop", "messageMetadata": DONE_STOP},
        "[DONE]",
    ]


def test_reasoning_text_and_a_tool_call_with_streamed_input() -> None:
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
    events: list[GenEvent] = [
        Started("scripted", 1),
        Token(Chunk(reasoning="hmm")),
        Token(Chunk(text="ok")),
        Token(Chunk(tool_calls=[call])),
        Token(Chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"a":'}}])),
        Token(Chunk(tool_calls=[{"index": 0, "function": {"arguments": "1}"}}])),
        finished("tool_calls"),
    ]
    out = chunks(events, message_id="m-7")
    assert out[0]["messageId"] == "m-7"
    assert out[2:-1] == [
        {"type": "reasoning-start", "id": "reasoning-1"},
        {"type": "reasoning-delta", "id": "reasoning-1", "delta": "hmm"},
        progress(1),  # (these events carry no clock)
        {"type": "reasoning-end", "id": "reasoning-1"},
        {"type": "text-start", "id": "text-2"},
        {"type": "text-delta", "id": "text-2", "delta": "ok"},
        {"type": "text-end", "id": "text-2"},
        {"type": "tool-input-start", "toolCallId": "c1", "toolName": "f"},
        {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '{"a":'},
        {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": "1}"},
        {"type": "tool-input-available", "toolCallId": "c1", "toolName": "f", "input": {"a": 1}},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "tool-calls", "messageMetadata": DONE_TOOLS},
    ]


def test_tool_call_whose_name_comes_late_and_arguments_that_are_not_json() -> None:
    events: list[GenEvent] = [
        Started("scripted", 1),
        Token(Chunk(tool_calls=[{"index": 3, "function": {"arguments": "not "}}])),
        Token(Chunk(tool_calls=[{"index": 3, "function": {"name": "g", "arguments": "json"}}])),
        finished("tool_calls"),
    ]
    out = bare(chunks(events))
    tool_id = "gen-1-tool-3"
    assert out[2:5] == [
        {"type": "tool-input-start", "toolCallId": tool_id, "toolName": "g"},
        {"type": "tool-input-delta", "toolCallId": tool_id, "inputTextDelta": "not json"},
        {
            "type": "tool-input-error",
            "toolCallId": tool_id,
            "toolName": "g",
            "input": "not json",
            "errorText": "the tool call's arguments are not JSON: 'not json'",
        },
    ]


def test_a_failure_closes_the_open_part_then_error_and_finish() -> None:
    error = UpstreamStatusError(503, "upstream overloaded", retryable=True)
    events: list[GenEvent] = [
        Started("scripted", 1),
        Token(Chunk(text="par")),
        Failed(error, USAGE, TIMINGS, partial=True),
    ]
    assert chunks(events)[4:] == [
        progress(1),
        {"type": "text-end", "id": "text-1"},
        {
            "type": "message-metadata",
            "messageMetadata": {
                **METADATA,
                "status": "failed",
                "error": {
                    "message": "upstream overloaded",
                    "type": "upstream_error",
                    "code": "upstream_503",
                },
            },
        },
        {"type": "error", "errorText": "upstream overloaded"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "error"},
        "[DONE]",
    ]


async def test_a_cancelled_generation_ends_with_abort_and_no_finish() -> None:
    events = cancelled(await generate(SCRIPT), after=5)  # stopped in the middle of the text
    out = chunks(events)
    ending = events[-1]
    assert out[-3:] == [
        {
            "type": "message-metadata",
            "messageMetadata": {
                "model": "scripted",
                "usage": {
                    "inputTokens": ending.usage.prompt_tokens,  # type: ignore[union-attr]
                    "outputTokens": ending.usage.completion_tokens,  # type: ignore[union-attr]
                    "totalTokens": ending.usage.total_tokens,  # type: ignore[union-attr]
                },
                "timings": {
                    "timeToFirstTokenMs": 500.0,
                    "durationMs": 1000.0,
                    "tokensPerSecond": 2.0,
                },
                "status": "stopped",
                "stopReason": "stopped",
            },
        },
        {"type": "abort", "reason": "stopped"},
        "[DONE]",
    ]
    assert out[-4] == {"type": "text-end", "id": "text-2"}  # the open part is closed first
    assert not any(isinstance(c, dict) and c["type"] == "finish" for c in out)


def test_finish_reasons_map_to_the_sdk_names() -> None:
    assert [ui_finish_reason(r) for r in ("stop", "length", "tool_calls", "content_filter")] == [
        "stop",
        "length",
        "tool-calls",
        "content-filter",
    ]
    assert ui_finish_reason("something_new") == "other"


def test_nothing_after_the_terminal_event_and_estimated_usage_is_flagged() -> None:
    encoder = UI.encoder(context())
    encoder.encode(Started("scripted", 1))
    end = Finished("stop", Usage(1, 2, estimated=True), TIMINGS, "demo", "demo", False)
    last = payloads(encoder.encode(end))[-1]
    assert last["messageMetadata"]["usage"]["estimated"] is True
    assert encoder.encode(Token(Chunk(text="late"))) == []


def test_progress_after_the_first_output_token_and_every_16() -> None:
    """Every token with output counts (reasoning, text, tool-call deltas; not a role, a
    finish reason or usage alone), on the hot path (a delta of the open part) and off it;
    the part comes right after its token's chunks, with the gateway's clock of that token."""
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f"}}
    args = {"index": 0, "function": {"arguments": "{}"}}
    outputs = [Chunk(reasoning="r"), *(Chunk(text=f" t{n}") for n in range(2, 31))]
    outputs += [Chunk(tool_calls=[call]), Chunk(tool_calls=[args]), Chunk(text="end")]
    events: list[GenEvent] = [Started("scripted", 1), Token(Chunk(role="assistant"), 0.5)]
    for n, chunk in enumerate(outputs, 1):
        events.append(Token(chunk, 0.5 + 0.25 * (n - 1)))
        if n == 20:
            events.append(Token(Chunk(usage=USAGE), 5.0))  # no output: not counted
    events += [Token(Chunk(finish_reason="tool_calls"), 9.0), finished("tool_calls")]
    out = chunks(events)
    assert [c for c in out if c not in bare(out)] == [
        progress(1, elapsed=500.0, first=500.0),
        progress(16, elapsed=4250.0, first=500.0, rate=4.0),
        progress(32, elapsed=8250.0, first=500.0, rate=4.0),
    ]
    after = [out[i - 1] for i, c in enumerate(out) if c not in bare(out)]
    assert after == [
        {"type": "reasoning-delta", "id": "reasoning-1", "delta": "r"},
        {"type": "text-delta", "id": "text-2", "delta": " t16"},
        {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": "{}"},  # 31, 32
    ]

    # the cadence is the encoder's option; with no clock the times are null
    timeless = [Started("scripted", 1), *(Token(Chunk(text="x")) for _ in range(5))]

    def progress_of(encoder: UIMessageStreamEncoder) -> list[Any]:
        out = [c for event in timeless for c in payloads(encoder.encode(event))]
        return [c for c in out if c not in bare(out)]

    assert progress_of(UI.encoder(context())) == [progress(1)]
    every_2 = progress_of(UIMessageStreamEncoder(context(), progress_every=2))
    assert every_2 == [progress(1), progress(2), progress(4)]
    with pytest.raises(ValueError, match="progress_every"):
        UIMessageStreamEncoder(context(), progress_every=0)


async def test_the_final_figures_are_metadata_not_progress() -> None:
    """Nothing after the last token's progress: the ending carries usage and timings."""
    out = chunks(await generate(LONG))
    last = max(i for i, c in enumerate(out) if c not in bare(out))
    assert out[last]["data"]["outputTokens"] == 32
    assert [c for c in out[last:] if c not in bare(out)] == [out[last]]
    assert out[-2]["messageMetadata"]["usage"]["outputTokens"] == 47


@pytest.mark.parametrize("script", [SCRIPT, LONG], ids=["short", "long"])
async def test_encoding_is_pure_so_a_replay_rebuilds_the_state_exactly(script: Any) -> None:
    """A reader resuming after event ``k`` feeds events ``[:k]`` to a fresh encoder, drops
    the output, and goes on: what it sends is exactly the rest of a full read."""
    events = await generate(script)
    full = encode(UI, events)
    assert encode(UI, events) == full
    for k in range(len(events) + 1):
        encoder = UI.encoder(context())
        prefix = [w for event in events[:k] for w in encoder.encode(event)]
        rest = [w for event in events[k:] for w in encoder.encode(event)] + encoder.end()
        assert prefix + rest == full, k


# -- the real `ai` package -------------------------------------------------------------------
EXPECTED_PARTS = [
    {"type": "step-start"},
    {"type": "reasoning", "id": "reasoning-1", "text": "Thinking hard.", "state": "done"},
    {"type": "text", "text": "It is sunny.", "state": "done"},
    {
        "type": "tool-get_weather",
        "toolCallId": "call_w",
        "state": "input-available",
        "input": {"city": "Paris"},
    },
]


async def test_the_ai_package_reads_our_stream_into_the_expected_message() -> None:
    wire = encode(UI, await generate(SCRIPT))
    result = run_node("ai_sdk.mjs", {"mode": "read", "sse": sse(wire)})
    assert result["errors"] == []
    # every chunk passed the transport's schema, in order, [DONE] excluded
    assert result["chunks"] == payloads(wire)[:-1]
    message = result["message"]
    assert message["id"] == "gen-1" and message["role"] == "assistant"
    assert message["parts"] == EXPECTED_PARTS
    metadata = message["metadata"]
    assert metadata["model"] == "scripted"
    assert metadata["usage"]["outputTokens"] > 0 and "timeToFirstTokenMs" in metadata["timings"]


async def test_the_ai_package_reports_a_failure_and_keeps_the_partial_answer() -> None:
    events = await generate([{"words": "half an"}, {"error": {"status": 502, "message": "gone"}}])
    result = run_node("ai_sdk.mjs", {"mode": "read", "sse": sse(encode(UI, events))})
    assert any("gone" in e for e in result["errors"])
    assert result["message"]["parts"][1] == {"type": "text", "text": "half an", "state": "done"}


async def test_the_ai_package_reads_a_stopped_stream_without_error() -> None:
    events = cancelled(await generate(SCRIPT), after=6)
    result = run_node("ai_sdk.mjs", {"mode": "read", "sse": sse(encode(UI, events))})
    assert result["errors"] == []
    assert result["chunks"][-1] == {"type": "abort", "reason": "stopped"}
    assert all(p.get("state", "done") == "done" for p in result["message"]["parts"])


async def test_hostile_markdown_is_delivered_verbatim() -> None:
    events = await generate(
        messages=[{"role": "user", "content": '{"script": "hostile-markdown"}'}]
    )
    result = run_node("ai_sdk.mjs", {"mode": "read", "sse": sse(encode(UI, events))})
    sent = "".join(e.chunk.text for e in events if isinstance(e, Token))
    [text] = [p["text"] for p in result["message"]["parts"] if p["type"] == "text"]
    assert text == sent and "<img src=x onerror=alert(1)>" in text


@pytest.mark.parametrize("cut", [2, 5, 9, 14])
async def test_chat_resume_by_replay_shows_no_duplicate_parts(cut: int) -> None:
    """``Chat`` sends, the connection drops after ``cut`` events, ``resumeStream`` gets the
    whole stream again from the start: the message equals a clean read."""
    full = sse(encode(UI, await generate(SCRIPT)))
    job = {"mode": "chat", "text": "weather?", "post": full, "cut": cut, "resume": full}
    result = run_node("ai_sdk.mjs", job)
    assert result["afterPost"]["status"] == "error"  # the drop was seen
    assert [r["method"] for r in result["requests"]] == ["POST", "GET"]
    assert result["requests"][1]["url"] == "http://test/api/chat/chat-1/stream"
    assert result["status"] == "ready" and result["error"] is None
    user, answer = result["messages"]
    assert user["parts"] == [{"type": "text", "text": "weather?"}]
    assert answer["id"] == "gen-1" and answer["parts"] == EXPECTED_PARTS


@pytest.mark.parametrize("cut", [6, 25, 40, 60])
async def test_progress_reaches_on_data_and_a_replay_adds_no_part(cut: int) -> None:
    """``Chat`` hands every ``data-progress`` part to ``onData`` and keeps none in the
    message. After a drop, the replay hands them all over again (the ones seen before the
    drop come twice, in order) and the message still equals the clean read's."""
    wire = encode(UI, await generate(LONG))
    sent = [c for c in payloads(wire)[:-1] if c["type"] == "data-progress"]
    assert [c["data"]["outputTokens"] for c in sent] == [1, 16, 32]
    clean = run_node("ai_sdk.mjs", {"mode": "chat", "text": "go", "post": sse(wire)})
    assert clean["status"] == "ready" and clean["data"] == sent
    job = {"mode": "chat", "text": "go", "post": sse(wire), "cut": cut, "resume": sse(wire)}
    result = run_node("ai_sdk.mjs", job)
    assert result["afterPost"]["status"] == "error" and result["status"] == "ready"
    seen = len(result["data"]) - len(sent)
    assert seen <= sum(c in sent for c in payloads(wire)[:cut])
    assert result["data"] == sent[:seen] + sent
    assert result["messages"] == clean["messages"]
    answer = result["messages"][1]
    assert not any(p["type"].startswith("data-") for p in answer["parts"])


async def test_resume_on_mount_replaces_a_persisted_partial_message() -> None:
    """After a reload the app's stored messages may hold the partial answer under its
    server id: the replay replaces it instead of adding a second answer."""
    full = sse(encode(UI, await generate(SCRIPT)))
    partial = {"id": "gen-1", "role": "assistant", "parts": [{"type": "text", "text": "It"}]}
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "weather?"}]}
    job = {"mode": "chat", "messages": [user, partial], "text": None, "resume": full}
    result = run_node("ai_sdk.mjs", job)
    assert [m["id"] for m in result["messages"]] == ["u1", "gen-1"]
    assert result["messages"][1]["parts"] == EXPECTED_PARTS


def test_resume_with_nothing_active_changes_nothing() -> None:
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
    job = {"mode": "chat", "messages": [user], "text": None, "resumeStatus": 204}
    result = run_node("ai_sdk.mjs", job)
    assert result["messages"] == [user] and result["status"] == "ready"
    assert [r["method"] for r in result["requests"]] == ["GET"]
