"""Scripted generations whose client output must not change: the golden files in this folder
hold what the code before canonical logs (commit 388df06) sent for each of them.

Only APIs that exist in both trees are used here (``Chunk``, ``Usage``, the errors,
``parse_chunk``), so ``record.py`` (old tree) and ``test_golden.py`` (this tree) run the very
same scripts. Time is virtual: the provider advances the gateway's clock before each chunk, so
every timing the surfaces show is the same in both trees.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from mianzhang.llm import (
    ChatRequest,
    Chunk,
    UpstreamProtocolError,
    UpstreamStatusError,
    Usage,
)
from mianzhang.llm._openai import parse_chunk

WALL_CLOCK = 1700000000.25  # time.time() while recording and testing
REQUEST = ChatRequest(messages=[{"role": "user", "content": "golden prompt"}])
BLOCK = "block"  # a step: wait until cancelled


class VirtualClock:
    """The gateway's clock: only the provider moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Step = Chunk | BaseException | float | str


@dataclass
class ScriptProvider:
    """Plays ``steps``: a float advances the clock, a chunk is yielded, an exception raised,
    ``BLOCK`` waits forever (until the generation is cancelled)."""

    steps: list[Step]
    clock: VirtualClock
    kind: str = "demo"
    closed: list[bool] = field(default_factory=list)
    blocked: asyncio.Event = field(default_factory=asyncio.Event)

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[Chunk]:
        try:
            for step in self.steps:
                if isinstance(step, float):
                    self.clock.now += step
                elif isinstance(step, BaseException):
                    raise step
                elif step == BLOCK:
                    self.blocked.set()  # everything before was appended: the runner asked on
                    await asyncio.Event().wait()
                else:
                    assert isinstance(step, Chunk)
                    yield step
        finally:
            self.closed.append(True)

    async def aclose(self) -> None:
        return None


def words(n: int, delay: float = 0.05) -> list[Step]:
    out: list[Step] = []
    for i in range(n):
        out += [delay, Chunk(text=f"w{i}" if i == 0 else f" w{i}")]
    return out


def raw(delta: dict[str, Any], finish: str | None = None, usage: Any = "null") -> Chunk:
    """A chunk as the OpenAI provider parses it, kept as its raw JSON text."""
    body = (
        '{"id":"chatcmpl-up","object":"chat.completion.chunk","created":1,"model":"up",'
        f'"choices":[{{"index":0,"delta":{_json(delta)},"finish_reason":{_json(finish)}}}]'
    )
    return parse_chunk(body + ("" if usage is None else f',"usage":{usage}') + "}")


def usage_chunk(prompt: int, completion: int) -> Chunk:
    body = (
        '{"id":"chatcmpl-up","object":"chat.completion.chunk","created":1,"model":"up",'
        f'"choices":[],"usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion},'
        f'"total_tokens":{prompt + completion}}}}}'
    )
    return parse_chunk(body)


def _json(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


CALL = {"index": 0, "id": "call_9", "type": "function", "function": {"name": "lookup"}}

SCENARIOS: dict[str, list[Step]] = {
    # 20 tokens: the native surface sends a progress event at 16
    "finished": [
        0.25,
        Chunk(role="assistant"),
        *words(20),
        0.01,
        Chunk(finish_reason="stop", usage=Usage(7, 20)),
    ],
    "finished_raw": [
        0.2,
        raw({"role": "assistant", "content": ""}),
        0.05,
        raw({"content": "Hi"}),
        0.05,
        raw({"content": " there"}),
        0.05,
        raw({}, "stop"),
        usage_chunk(9, 2),
    ],
    "failed_midstream": [0.3, *words(3), UpstreamProtocolError("the upstream broke off")],
    "failed_before_output": [
        0.1,
        UpstreamStatusError(400, "upstream HTTP 400: bad", retryable=False),
    ],
    "cancelled": [0.3, *words(4), BLOCK],
    "tool_calls": [
        0.2,
        Chunk(tool_calls=[CALL]),
        0.05,
        Chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"q":'}}]),
        0.05,
        Chunk(tool_calls=[{"index": 0, "function": {"arguments": '"x"}'}}]),
        0.05,
        Chunk(finish_reason="tool_calls"),
    ],
    "tool_calls_raw": [
        0.2,
        raw({"role": "assistant", "content": None, "tool_calls": [CALL]}),
        0.05,
        raw({"tool_calls": [{"index": 0, "function": {"arguments": '{"q":1}'}}]}),
        0.05,
        raw({}, "tool_calls"),
    ],
}

# (scenario, surface, options of the surface that started it)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    *(
        (name, surface, options)
        for name in ("finished", "finished_raw", "failed_midstream", "failed_before_output")
        for surface, options in (
            ("chat", {"include_usage": False}),
            ("chat", {"include_usage": True}),
            ("responses", {"background": True, "params": {"temperature": 0.5}}),
            ("native", {}),
        )
    ),
    ("cancelled", "chat", {"include_usage": False}),
    ("cancelled", "responses", {"background": False, "params": {}}),
    ("cancelled", "native", {}),
    ("tool_calls", "chat", {"include_usage": False}),
    ("tool_calls_raw", "chat", {"include_usage": True}),
]

STREAM_IDS = {"chat": "chatcmpl-golden", "responses": "resp_golden", "native": "gen-golden"}


def case_name(scenario: str, surface: str, options: dict[str, Any]) -> str:
    usage = "-usage" if options.get("include_usage") else ""
    return f"{scenario}-{surface}{usage}"


def message_item_hex(stream_id: str) -> str:
    """The hex of the message item id the new responses surface derives (``msg_`` + it)."""
    return hashlib.blake2b(f"{stream_id}/0".encode(), digest_size=16).hexdigest()
