"""A generation as canonical log entries: start (with the home surface), tokens, the end; the
cancelled tail; closing the entries closes the generation and notes the cancel reason."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from mianzhang.llm import (
    Cancelled,
    ChatRequest,
    Finished,
    Gateway,
    GenEvent,
    ModelEntry,
    ModelRegistry,
    Started,
    Token,
)
from mianzhang.llm._canonical import StartRecord, parse_event
from mianzhang.llm._streams import cancelled_entries, generation_entries

from ._fakes import ScriptedProvider, text_chunks
from ._generations import StepClock

REQUEST = ChatRequest(messages=[{"role": "user", "content": "hi"}])


def gateway(provider: ScriptedProvider) -> Gateway:
    registry = ModelRegistry(
        [ModelEntry("m", provider, "m", description="a demo")], default_model="m"
    )
    return Gateway(registry, clock=StepClock(start=100.0, step=1.0))


async def test_the_entries_are_the_gateway_events_in_order() -> None:
    live: list[GenEvent] = [
        e
        async for e in gateway(ScriptedProvider([text_chunks("a", "b")]))
        .start("m", REQUEST)
        .events()
    ]
    gen = gateway(ScriptedProvider([text_chunks("a", "b")])).start("m", REQUEST)
    entries = [e async for e in generation_entries(gen, "chat", {"include_usage": True})]
    assert [e.event for e in entries] == [
        "gen.start",
        "gen.token",
        "gen.token",
        "gen.token",
        "gen.finish",
    ]
    parsed = [parse_event(e.event, e.data) for e in entries]
    start = parsed[0]
    assert isinstance(start, StartRecord)
    assert start.surface == "chat" and start.options == {"include_usage": True}
    assert start.started == Started("m", gen.created, "demo", "a demo")
    tokens = [p for p in parsed if isinstance(p, Token)]
    assert [t.chunk.text for t in tokens] == ["a", "b", ""]
    assert [t.elapsed for t in tokens] == [t.elapsed for t in live if isinstance(t, Token)]
    assert tokens[0].elapsed is not None and tokens[0].elapsed > 0
    finish = parsed[-1]
    assert isinstance(finish, Finished) and finish.completed_at is not None
    assert isinstance(live[-1], Finished) and finish.usage == live[-1].usage
    assert finish.timings == live[-1].timings


async def test_a_cancellation_thrown_in_closes_the_generation_with_its_reason() -> None:
    never = asyncio.Event()
    provider = ScriptedProvider([[*text_chunks("a")[:1], never]])
    gen = gateway(provider).start("m", REQUEST)
    entries = generation_entries(gen, "native", {})
    async with aclosing(entries):
        assert [(await anext(entries)).event for _ in range(2)] == ["gen.start", "gen.token"]
        with pytest.raises(asyncio.CancelledError):
            await entries.athrow(asyncio.CancelledError("stopped"))
    assert provider.closed == [0] and gen.state == "cancelled"
    assert gen.cancel_reason == "stopped"
    (tail,) = cancelled_entries(gen, "stopped")
    cancelled = parse_event(tail.event, tail.data)
    assert tail.event == "gen.cancelled" and isinstance(cancelled, Cancelled)
    assert cancelled.reason == "stopped" and cancelled.partial is True
    assert cancelled.usage == gen.usage and cancelled.timings == gen.timings()
