"""The AG-UI surface: exact events, each one valid for ``ag-ui-protocol``'s models, purity, and
the real ``@ag-ui/client``."""

from __future__ import annotations

from typing import Any

from ag_ui.core import Event
from pydantic import TypeAdapter

from mianzhang.llm import UpstreamStatusError
from mianzhang.llm._agui_surface import AGUISurface, agui_reopen
from mianzhang.llm._types import Chunk, Failed, Finished, GenEvent, Started, Timings, Token, Usage
from tests._support.node import run_node

from ._generations import cancelled, context, encode, generate, payloads, sse

AGUI = AGUISurface()
EVENT: TypeAdapter[Any] = TypeAdapter(Event)
USAGE = Usage(7, 3)
TIMINGS = Timings(0.5, 2.0, 3)
RUN = {"thread_id": "t-1", "run_id": "r-1"}
SCRIPT: list[Any] = [
    {"reasoning": ["Thinking ", "hard."]},
    {"words": "It is sunny."},
    {"tool_call": {"name": "get_weather", "id": "call_w", "arguments": {"city": "Paris"}}},
]


def validated(events: list[GenEvent], **options: Any) -> list[dict[str, Any]]:
    """The AG-UI events of ``events``, each checked against ag-ui-protocol's models: it
    validates, has no field the model does not know, and serialises back unchanged."""
    out = payloads(encode(AGUI, events, **options))
    for event in out:
        model = EVENT.validate_python(event)
        assert not model.model_extra, (event, model.model_extra)
        assert model.model_dump(mode="json", by_alias=True) == event
    return out


def finished(reason: str = "stop") -> Finished:
    return Finished(reason, USAGE, TIMINGS, "scripted", "scripted", usage_reported=True)


USAGE_JSON = [{"model": "scripted", "inputTokens": 7, "outputTokens": 3, "totalTokens": 10}]


def test_surface_name_media_type_and_headers() -> None:
    assert AGUI.name == "agui" and AGUI.media_type == "text/event-stream"
    assert dict(AGUI.headers) == {"cache-control": "no-cache", "x-accel-buffering": "no"}


def test_a_text_run() -> None:
    events: list[GenEvent] = [
        Started("scripted", 1),
        Token(Chunk(text="Hel")),
        Token(Chunk(text="lo", finish_reason="stop")),
        finished(),
    ]
    assert validated(events, **RUN) == [
        {"type": "RUN_STARTED", "threadId": "t-1", "runId": "r-1"},
        {"type": "TEXT_MESSAGE_START", "messageId": "r-1-assistant", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "r-1-assistant", "delta": "Hel"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "r-1-assistant", "delta": "lo"},
        {"type": "TEXT_MESSAGE_END", "messageId": "r-1-assistant"},
        {
            "type": "RUN_FINISHED",
            "threadId": "t-1",
            "runId": "r-1",
            "usage": USAGE_JSON,
            "metadata": {"mianzhang": {"finishReason": "stop"}},
        },
    ]


def test_ids_default_to_the_stream_id() -> None:
    out = validated([Started("scripted", 1), Token(Chunk(text="x")), finished()])
    assert out[0] == {"type": "RUN_STARTED", "threadId": "gen-1", "runId": "gen-1"}
    assert out[1]["messageId"] == "gen-1-assistant"
    given = validated([Started("s", 1), Token(Chunk(text="x")), finished()], message_id="m9")
    assert given[1]["messageId"] == "m9"


def test_reasoning_text_and_tool_calls() -> None:
    head = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
    events: list[GenEvent] = [
        Started("scripted", 1),
        Token(Chunk(reasoning="hmm")),
        Token(Chunk(text="ok")),
        Token(Chunk(tool_calls=[head])),
        Token(Chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"a":1}'}}])),
        Token(Chunk(tool_calls=[{"index": 1, "id": "c2", "function": {"name": "g"}}])),
        finished("tool_calls"),
    ]
    rid = "r-1-assistant-reasoning-1"
    assert validated(events, **RUN)[1:] == [
        {"type": "REASONING_START", "messageId": rid},
        {"type": "REASONING_MESSAGE_START", "messageId": rid, "role": "reasoning"},
        {"type": "REASONING_MESSAGE_CONTENT", "messageId": rid, "delta": "hmm"},
        {"type": "REASONING_MESSAGE_END", "messageId": rid},
        {"type": "REASONING_END", "messageId": rid},
        {"type": "TEXT_MESSAGE_START", "messageId": "r-1-assistant", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "r-1-assistant", "delta": "ok"},
        {"type": "TEXT_MESSAGE_END", "messageId": "r-1-assistant"},
        {
            "type": "TOOL_CALL_START",
            "toolCallId": "c1",
            "toolCallName": "f",
            "parentMessageId": "r-1-assistant",
        },
        {"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": '{"a":1}'},
        {
            "type": "TOOL_CALL_START",
            "toolCallId": "c2",
            "toolCallName": "g",
            "parentMessageId": "r-1-assistant",
        },
        {"type": "TOOL_CALL_END", "toolCallId": "c1"},
        {"type": "TOOL_CALL_END", "toolCallId": "c2"},
        {
            "type": "RUN_FINISHED",
            "threadId": "t-1",
            "runId": "r-1",
            "usage": USAGE_JSON,
            "outcome": {"type": "success", "pendingToolCallIds": ["c1", "c2"]},
            "metadata": {"mianzhang": {"finishReason": "tool_calls"}},
        },
    ]


def test_a_failure_is_run_error_after_closing_the_text() -> None:
    error = UpstreamStatusError(429, "slow down", retryable=True)
    events: list[GenEvent] = [
        Started("scripted", 1),
        Token(Chunk(text="par")),
        Failed(error, USAGE, TIMINGS, partial=True),
    ]
    assert validated(events, **RUN)[-2:] == [
        {"type": "TEXT_MESSAGE_END", "messageId": "r-1-assistant"},
        {
            "type": "RUN_ERROR",
            "message": "slow down",
            "code": "rate_limit_exceeded",
            "usage": USAGE_JSON,
        },
    ]
    assert AGUI.encoder(context()).end() == []  # no [DONE]: the client JSON-parses every event


async def test_a_stop_is_run_finished_cancelled_with_everything_closed() -> None:
    events = await generate(SCRIPT)
    tool_started = next(
        i for i, e in enumerate(events) if isinstance(e, Token) and e.chunk.tool_calls
    )
    out = validated(cancelled(events, after=tool_started + 2), **RUN)
    assert out[-2] == {"type": "TOOL_CALL_END", "toolCallId": "call_w"}
    assert out[-1]["type"] == "RUN_FINISHED"
    assert out[-1]["outcome"] == {"type": "cancelled"}
    assert out[-1]["metadata"] == {"mianzhang": {"cancelReason": "stopped"}}


async def test_encoding_is_pure_so_a_replay_rebuilds_the_state_exactly() -> None:
    events = await generate(SCRIPT)
    full = encode(AGUI, events, **RUN)
    for k in range(len(events) + 1):
        encoder = AGUI.encoder(context(**RUN))
        prefix = [w for event in events[:k] for w in encoder.encode(event)]
        rest = [w for event in events[k:] for w in encoder.encode(event)] + encoder.end()
        assert prefix + rest == full, k


# -- the real @ag-ui/client --------------------------------------------------------------------
USER = {"id": "u1", "role": "user", "content": "weather?"}
ASSISTANT = {
    "id": "r-1-assistant",
    "role": "assistant",
    "content": "It is sunny.",
    "toolCalls": [
        {
            "id": "call_w",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ],
}
REASONING = {"id": "r-1-assistant-reasoning-1", "role": "reasoning", "content": "Thinking hard."}


def run_client(events: list[GenEvent]) -> Any:
    wire = encode(AGUI, events, thread_id="thread-1", run_id="r-1")
    return run_node("agui.mjs", {"sse": sse(wire), "messages": [USER], "runId": "r-1"})


async def test_http_agent_runs_our_stream_into_the_expected_messages() -> None:
    result = run_client(await generate(SCRIPT))
    assert result["error"] is None
    assert result["messages"] == [USER, REASONING, ASSISTANT]
    assert result["events"][-1]["outcome"] == {"type": "success", "pendingToolCallIds": ["call_w"]}
    request = result["request"]
    assert request["headers"]["accept"] == "text/event-stream"
    assert request["body"]["threadId"] == "thread-1" and request["body"]["runId"] == "r-1"


async def test_http_agent_accepts_a_stopped_and_a_failed_run() -> None:
    events = await generate(SCRIPT)
    stopped = run_client(cancelled(events, after=8))
    assert stopped["error"] is None
    assert stopped["events"][-1]["outcome"] == {"type": "cancelled"}
    failing = await generate([{"words": "half"}, {"error": {"status": 500, "message": "down"}}])
    failed = run_client(failing)
    assert failed["events"][-1]["type"] == "RUN_ERROR"
    assert failed["events"][-1]["message"] == "down"
    assert failed["messages"][-1]["content"] == "half"


def test_reopen_starts_the_run_and_every_open_part_again() -> None:
    head = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
    encoder = AGUI.encoder(context(**RUN))
    sent = []
    assert agui_reopen(sent) == []  # nothing received: a resume is a full read
    for event in [Started("scripted", 1), Token(Chunk(reasoning="hm"))]:
        sent += encoder.encode(event)
    rid = "r-1-assistant-reasoning-1"
    reopened = payloads(agui_reopen(sent))
    assert reopened == [
        {"type": "RUN_STARTED", "threadId": "t-1", "runId": "r-1"},
        {"type": "REASONING_START", "messageId": rid},
        {"type": "REASONING_MESSAGE_START", "messageId": rid, "role": "reasoning"},
    ]
    sent += encoder.encode(Token(Chunk(tool_calls=[head])))
    # inside the events of one token: the reasoning message ended, its span not yet
    inside = payloads(agui_reopen(sent[:-2]))
    assert inside[1:] == [{"type": "REASONING_START", "messageId": rid}]
    sent += encoder.encode(Token(Chunk(text="and")))
    assert payloads(agui_reopen(sent))[1:] == [
        {
            "type": "TOOL_CALL_START",
            "toolCallId": "c1",
            "toolCallName": "f",
            "parentMessageId": "r-1-assistant",
        },
        {"type": "TEXT_MESSAGE_START", "messageId": "r-1-assistant", "role": "assistant"},
    ]
    for event in reopened:
        assert not EVENT.validate_python(event).model_extra
    sent += encoder.encode(finished())
    assert agui_reopen(sent) == []  # the run ended: nothing is missing


async def test_http_agent_resumed_after_any_event_ends_with_each_part_once() -> None:
    """A first connection drops after ``p`` events (any ``p``); the same ``HttpAgent`` runs
    again and gets ``agui_reopen`` of what it received plus the events it missed: its
    messages equal those of a clean read. (A replay from the first event would append every
    part again to the messages it holds.)"""
    wire = encode(AGUI, await generate(SCRIPT), thread_id="thread-1", run_id="r-1")
    cases = [
        {"sse": [sse(wire[:p]), sse(agui_reopen(wire[:p]) + wire[p:])], "messages": [USER]}
        for p in range(1, len(wire))
    ]
    replay = {"sse": [sse(wire[:12]), sse(wire)], "messages": [USER]}
    clean, *resumed, replayed = run_node(
        "agui.mjs", {"cases": [{"sse": sse(wire), "messages": [USER]}, *cases, replay]}
    )["results"]
    assert clean["error"] is None and len(clean["messages"]) == 3
    for p, result in enumerate(resumed, 1):
        assert [run["error"] for run in result["runs"]] == [None, None], p
        assert result["messages"] == clean["messages"], p
    assert replayed["messages"][1]["content"] == "Thinking hard.Thinking hard."
    assert replayed["messages"][2]["content"] == "It is sunny.It is sunny."
