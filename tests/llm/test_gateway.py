"""The gateway: retries before the first token, fallbacks, no retry after it, timeouts,
cancellation closing the provider, usage and metrics for every outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from mianzhang.llm import (
    ChatRequest,
    Chunk,
    Failed,
    Finished,
    Gateway,
    GenEvent,
    LLMMetrics,
    ModelEntry,
    ModelNotFound,
    ModelRegistry,
    RetryPolicy,
    Started,
    Token,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
    Usage,
)
from tests._support.wait import eventually

from ._fakes import ScriptedProvider, text_chunks

REQUEST = ChatRequest(messages=[{"role": "user", "content": "hello there"}])


def status(code: int, retry_after: float | None = None) -> UpstreamStatusError:
    return UpstreamStatusError(
        code, f"HTTP {code}", retryable=code >= 500 or code == 429, retry_after=retry_after
    )


class Env:
    def __init__(
        self,
        *providers: tuple[str, ScriptedProvider, tuple[str, ...]],
        first_token_timeout: float = 5.0,
        stall_timeout: float = 5.0,
    ) -> None:
        entries = [ModelEntry(name, p, f"up-{name}", fallbacks) for name, p, fallbacks in providers]
        self.registry = ModelRegistry(entries, default_model=providers[0][0])
        self.prom = CollectorRegistry()
        self.metrics = LLMMetrics(self.prom)
        self.sleeps: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        self.gateway = Gateway(
            self.registry,
            metrics=self.metrics,
            retry=RetryPolicy(random=lambda: 0.0),
            first_token_timeout=first_token_timeout,
            stall_timeout=stall_timeout,
            sleep=fake_sleep,
        )

    def value(self, name: str, **labels: str) -> float:
        v = self.prom.get_sample_value(name, labels)
        return 0.0 if v is None else v


async def collect(events: AsyncIterator[GenEvent]) -> list[GenEvent]:
    return [e async for e in events]


def texts(events: list[GenEvent]) -> str:
    return "".join(e.chunk.text for e in events if isinstance(e, Token))


async def test_streams_tokens_then_finished_with_provider_usage() -> None:
    p = ScriptedProvider(
        [[Chunk(text="Hi"), Chunk(text=" you"), Chunk(finish_reason="stop", usage=Usage(7, 2))]]
    )
    env = Env(("m", p, ()))
    gen = env.gateway.start("m", REQUEST)
    events = await collect(gen.events())
    assert isinstance(events[0], Started) and events[0].model == "m"
    assert texts(events) == "Hi you"
    final = events[-1]
    assert isinstance(final, Finished)
    assert final.finish_reason == "stop" and final.usage == Usage(7, 2) and final.usage_reported
    assert final.upstream_model == "up-m"
    assert gen.state == "completed"
    assert p.calls == ["up-m"] and p.closed == [0]
    labels = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "demo",
        "gen_ai_request_model": "m",
    }
    assert env.value("gen_ai_server_time_to_first_token_seconds_count", **labels) == 1
    assert env.value("gen_ai_client_token_usage_sum", **labels, gen_ai_token_type="output") == 2
    assert env.value("gen_ai_client_token_usage_sum", **labels, gen_ai_token_type="input") == 7
    assert env.value("gen_ai_server_time_per_output_token_seconds_count", **labels) == 1
    assert env.value("mianzhang_llm_active_generations", gen_ai_request_model="m") == 0


async def test_usage_is_counted_when_the_provider_reports_none() -> None:
    p = ScriptedProvider([text_chunks("a", "b", "c")])
    env = Env(("m", p, ()))
    events = await collect(env.gateway.start("m", REQUEST).events())
    final = events[-1]
    assert isinstance(final, Finished)
    assert final.usage.completion_tokens == 3 and final.usage.estimated
    assert final.usage.prompt_tokens > 0 and not final.usage_reported


async def test_default_model_when_none_is_named() -> None:
    p = ScriptedProvider([text_chunks("x")])
    env = Env(("m", p, ()))
    gen = env.gateway.start(None, REQUEST)
    assert gen.model == "m"


def test_unknown_model_fails_before_anything_streams() -> None:
    env = Env(("m", ScriptedProvider([text_chunks("x")]), ()))
    with pytest.raises(ModelNotFound):
        env.gateway.start("nope", REQUEST)


async def test_retryable_errors_before_first_token_are_retried_with_backoff() -> None:
    p = ScriptedProvider([[status(500)], [UpstreamConnectError("refused")], text_chunks("ok")])
    env = Env(("m", p, ()))
    events = await collect(env.gateway.start("m", REQUEST).events())
    assert texts(events) == "ok" and isinstance(events[-1], Finished)
    assert len(p.calls) == 3 and p.closed == [0, 1, 2]
    assert env.sleeps == [0.5, 1.0]
    assert (
        env.value(
            "mianzhang_llm_retries_total", gen_ai_provider_name="demo", gen_ai_request_model="m"
        )
        == 2
    )
    assert (
        env.value(
            "mianzhang_llm_upstream_errors_total",
            gen_ai_provider_name="demo",
            gen_ai_request_model="m",
            error_type="500",
        )
        == 1
    )


async def test_retry_after_is_honoured() -> None:
    p = ScriptedProvider([[status(429, retry_after=1.5)], text_chunks("ok")])
    env = Env(("m", p, ()))
    await collect(env.gateway.start("m", REQUEST).events())
    assert env.sleeps == [1.5]


async def test_held_role_chunk_of_a_failed_attempt_is_never_delivered() -> None:
    p = ScriptedProvider(
        [
            [Chunk(role="assistant", raw="first-attempt"), status(503)],
            [
                Chunk(role="assistant", raw="second"),
                Chunk(text="t", raw="t"),
                Chunk(finish_reason="stop", raw="f"),
            ],
        ]
    )
    env = Env(("m", p, ()))
    events = await collect(env.gateway.start("m", REQUEST).events())
    raws = [e.chunk.raw for e in events if isinstance(e, Token)]
    assert raws == ["second", "t", "f"]


async def test_after_retries_the_fallback_answers() -> None:
    bad = ScriptedProvider([[status(502)]])
    good = ScriptedProvider([text_chunks("fallback")], kind="openai")
    env = Env(("main", bad, ("backup",)), ("backup", good, ()))
    gen = env.gateway.start("main", REQUEST)
    events = await collect(gen.events())
    assert texts(events) == "fallback"
    assert len(bad.calls) == 3  # 1 + 2 retries
    assert good.calls == ["up-backup"]
    final = events[-1]
    assert isinstance(final, Finished) and final.provider == "openai"
    assert (
        env.value("mianzhang_llm_fallbacks_total", gen_ai_request_model="main", fallback="backup")
        == 1
    )


async def test_non_retryable_error_skips_retries_but_uses_fallbacks() -> None:
    bad = ScriptedProvider([[status(401)]])
    good = ScriptedProvider([text_chunks("fb")])
    env = Env(("main", bad, ("backup",)), ("backup", good, ()))
    events = await collect(env.gateway.start("main", REQUEST).events())
    assert len(bad.calls) == 1 and texts(events) == "fb"


async def test_bad_request_ends_the_chain() -> None:
    bad = ScriptedProvider([[status(400)]])
    good = ScriptedProvider([text_chunks("fb")])
    env = Env(("main", bad, ("backup",)), ("backup", good, ()))
    gen = env.gateway.start("main", REQUEST)
    events = await collect(gen.events())
    final = events[-1]
    assert isinstance(final, Failed) and not final.partial
    assert isinstance(final.error, UpstreamStatusError) and final.error.status_code == 400
    assert good.calls == [] and gen.state == "failed"


async def test_all_attempts_failing_gives_failed_with_the_last_error() -> None:
    p = ScriptedProvider([[status(503)]])
    env = Env(("m", p, ()))
    events = await collect(env.gateway.start("m", REQUEST).events())
    assert [type(e) for e in events] == [Started, Failed]
    assert isinstance(events[-1], Failed) and events[-1].error.status_code == 503  # type: ignore[attr-defined]
    labels = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "demo",
        "gen_ai_request_model": "m",
    }
    assert (
        env.value("gen_ai_client_operation_duration_seconds_count", **labels, error_type="503") == 1
    )


async def test_error_after_first_token_is_not_retried_and_keeps_partial_output() -> None:
    p = ScriptedProvider(
        [
            [Chunk(text="part"), Chunk(text="ial"), UpstreamProtocolError("cut")],
            text_chunks("never"),
        ]
    )
    env = Env(("m", p, ()))
    gen = env.gateway.start("m", REQUEST)
    events = await collect(gen.events())
    assert texts(events) == "partial"
    final = events[-1]
    assert isinstance(final, Failed) and final.partial
    assert isinstance(final.error, UpstreamProtocolError)
    assert final.usage.completion_tokens == 2  # usage of a stream cut short
    assert len(p.calls) == 1 and gen.state == "failed"
    labels = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "demo",
        "gen_ai_request_model": "m",
    }
    assert env.value("gen_ai_client_token_usage_sum", **labels, gen_ai_token_type="output") == 2


async def test_stream_ending_without_finish_reason_is_a_failure() -> None:
    p = ScriptedProvider([[Chunk(text="x")]])
    env = Env(("m", p, ()))
    events = await collect(env.gateway.start("m", REQUEST).events())
    assert isinstance(events[-1], Failed) and events[-1].partial


async def test_empty_stream_is_retried() -> None:
    p = ScriptedProvider([[], text_chunks("ok")])
    env = Env(("m", p, ()))
    events = await collect(env.gateway.start("m", REQUEST).events())
    assert texts(events) == "ok" and len(p.calls) == 2


async def test_first_token_timeout_is_retried_and_closes_the_attempt() -> None:
    never = asyncio.Event()
    p = ScriptedProvider([[never], text_chunks("late")])
    env = Env(("m", p, ()), first_token_timeout=0.05)
    events = await asyncio.wait_for(collect(env.gateway.start("m", REQUEST).events()), 10)
    assert texts(events) == "late"
    assert p.closed == [0, 1]
    assert (
        env.value(
            "mianzhang_llm_upstream_errors_total",
            gen_ai_provider_name="demo",
            gen_ai_request_model="m",
            error_type="timeout",
        )
        == 1
    )


async def test_stall_after_first_token_fails_the_stream() -> None:
    never = asyncio.Event()
    p = ScriptedProvider([[Chunk(text="a"), never]])
    env = Env(("m", p, ()), stall_timeout=0.05)
    events = await asyncio.wait_for(collect(env.gateway.start("m", REQUEST).events()), 10)
    final = events[-1]
    assert isinstance(final, Failed) and isinstance(final.error, UpstreamTimeout)
    assert final.partial and p.closed == [0] and len(p.calls) == 1


async def test_cancelling_while_waiting_for_the_first_chunk_closes_the_provider() -> None:
    never = asyncio.Event()
    p = ScriptedProvider([[never]])
    env = Env(("m", p, ()))
    gen = env.gateway.start("m", REQUEST)
    gen.cancel_reason = "abandoned"

    async def consume() -> None:
        async for _ in gen.events():
            pass

    task = asyncio.create_task(consume())
    try:
        await eventually(lambda: bool(p.calls), timeout=5, interval=0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        task.cancel()
    assert p.closed == [0]
    assert gen.state == "cancelled"
    assert (
        env.value("mianzhang_llm_cancellations_total", gen_ai_request_model="m", reason="abandoned")
        == 1
    )
    assert env.value("mianzhang_llm_active_generations", gen_ai_request_model="m") == 0


async def test_closing_the_iterator_mid_stream_closes_the_provider_and_records_usage() -> None:
    never = asyncio.Event()
    p = ScriptedProvider([[Chunk(text="a"), Chunk(text="b"), never]])
    env = Env(("m", p, ()))
    gen = env.gateway.start("m", REQUEST)
    events = gen.events()
    got = [await anext(events) for _ in range(3)]  # Started, a, b
    assert texts(got) == "ab"
    await events.aclose()  # type: ignore[attr-defined]
    assert p.closed == [0] and gen.state == "cancelled"
    assert gen.usage.completion_tokens == 2
    labels = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "demo",
        "gen_ai_request_model": "m",
    }
    assert env.value("gen_ai_client_token_usage_sum", **labels, gen_ai_token_type="output") == 2
    assert (
        env.value(
            "gen_ai_client_operation_duration_seconds_count", **labels, error_type="cancelled"
        )
        == 1
    )


async def test_events_can_be_iterated_once() -> None:
    env = Env(("m", ScriptedProvider([text_chunks("x")]), ()))
    gen = env.gateway.start("m", REQUEST)
    await collect(gen.events())
    with pytest.raises(RuntimeError):
        await collect(gen.events())


async def test_empty_answer_with_only_a_finish_reason_completes() -> None:
    p = ScriptedProvider([[Chunk(finish_reason="stop")]])
    env = Env(("m", p, ()))
    events = await collect(env.gateway.start("m", REQUEST).events())
    assert isinstance(events[-1], Finished) and texts(events) == ""
