"""The demo model: deterministic, honest about being a demo, timed as configured."""

from __future__ import annotations

from mianzhang.llm import ChatRequest, DemoProvider, Usage, demo_answer


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
