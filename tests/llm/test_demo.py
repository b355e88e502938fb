"""The demo model: deterministic, honest about being a demo, timed as configured; it refuses
tools rather than ignoring them."""

from __future__ import annotations

import pytest

from mianzhang._errors import UpstreamUnsupported
from mianzhang.llm import (
    ChatRequest,
    DemoProvider,
    Gateway,
    ModelEntry,
    ModelRegistry,
    Usage,
    demo_answer,
)


def request(text: str, max_tokens: int | None = None) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], max_tokens=max_tokens)


def test_answer_is_deterministic_and_says_it_is_a_demo() -> None:
    a = demo_answer("tell me a story", 30)
    assert a == demo_answer("tell me a story", 30) and len(a) == 30
    text = "".join(a)
    assert "demo model, not a language model" in text and '"tell me a story"' in text


async def test_streams_pieces_with_configured_delays_then_exact_usage() -> None:
    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)

    p = DemoProvider(ttft=0.2, token_delay=0.01, tokens=5, sleep=sleep)
    chunks = [c async for c in p.stream("demo", request("hi"))]
    assert "".join(c.text for c in chunks) == "".join(demo_answer("hi", 5))
    assert sleeps == [0.2, 0.01, 0.01, 0.01, 0.01]
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


async def test_max_tokens_cuts_with_finish_reason_length() -> None:
    p = DemoProvider(ttft=0, token_delay=0, tokens=50)
    chunks = [c async for c in p.stream("demo", request("hi", max_tokens=3))]
    assert sum(1 for c in chunks if c.text) == 3
    assert chunks[-1].finish_reason == "length"
    usage = chunks[-1].usage
    assert isinstance(usage, Usage) and usage.completion_tokens == 3


async def test_tools_are_refused_before_anything_streams() -> None:
    demo = DemoProvider(ttft=0, token_delay=0, tokens=3)
    tools = [{"type": "function", "function": {"name": "f"}}]
    request = ChatRequest([{"role": "user", "content": "hi"}], params={"tools": tools})
    with pytest.raises(UpstreamUnsupported, match="scripted"):
        demo.check_request(request)
    registry = ModelRegistry([ModelEntry("demo", demo, "demo")], default_model="demo")
    with pytest.raises(UpstreamUnsupported):
        Gateway(registry).start("demo", request)  # at start: a 400 before any stream
    Gateway(registry).start("demo", ChatRequest([{"role": "user", "content": "hi"}]))
