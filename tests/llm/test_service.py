"""LLMService: preparing generations per API (home surface, options, metadata) and running
them on a StreamHost: canonical events in the log, the runner writes the cancelled tail and
awaits ``on_end`` once."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from mianzhang.llm import (
    Cancelled,
    Finished,
    LLMSettings,
    ModelEntry,
    ModelNotFound,
    ModelRegistry,
)
from mianzhang.llm._anthropic_requests import parse_count_tokens, parse_messages
from mianzhang.llm._canonical import StartRecord, parse_event, record_from_meta
from mianzhang.llm._requests import ChatCompletionBody, GenerationBody, ResponsesBody
from mianzhang.llm._service import LLMService
from mianzhang.log import MemoryEventLog, StreamState
from mianzhang.log.serve import StreamHost
from tests._support.wait import eventually

from ._fakes import ScriptedProvider, text_chunks


def service(provider: ScriptedProvider) -> LLMService:
    registry = ModelRegistry([ModelEntry("m", provider, "m")], default_model="m")
    return LLMService(LLMSettings(), metrics_registry=CollectorRegistry(), registry=registry)


async def test_a_chat_generation_is_logged_in_canonical_form_with_its_home_surface() -> None:
    svc = service(ScriptedProvider([text_chunks("x", "y")]))
    body = ChatCompletionBody(
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    prepared = svc.prepare_chat(body)
    assert prepared.stream_id.startswith("chatcmpl-") and prepared.surface == "chat"
    ended = asyncio.Event()

    async def on_end() -> None:
        ended.set()

    async with MemoryEventLog() as log:
        host = StreamHost(log)
        try:
            await svc.start(host, prepared, on_end=on_end)
            async with asyncio.timeout(10):
                await ended.wait()
            info = await log.info(prepared.stream_id)
            _, events = await log.read(prepared.stream_id)
        finally:
            await host.aclose()
    assert info is not None and info.state is StreamState.CLOSED
    assert info.meta["kind"] == "llm.chat" and info.meta["model"] == "m"
    record = record_from_meta(info.meta)
    assert record is not None and record.options == {"include_usage": True}
    parsed = [parse_event(e.event, e.data) for e in events]
    assert isinstance(parsed[0], StartRecord) and parsed[0] == record
    assert isinstance(parsed[-1], Finished)


async def test_unknown_model_is_refused_when_preparing() -> None:
    svc = service(ScriptedProvider([text_chunks("x")]))
    with pytest.raises(ModelNotFound):
        svc.prepare_native(GenerationBody(model="zz", messages=[{"role": "user", "content": "x"}]))


async def test_a_stopped_generation_ends_with_one_cancelled_event_written_by_the_runner() -> None:
    never = asyncio.Event()
    provider = ScriptedProvider([[*text_chunks("a")[:1], never]])
    svc = service(provider)
    prepared = svc.prepare_responses(ResponsesBody(input="hi", background=True))
    assert prepared.stream_id.startswith("resp_") and prepared.background
    assert prepared.options["background"] is True
    ends: list[int] = []

    async def on_end() -> None:
        ends.append(1)

    async with MemoryEventLog() as log:
        host = StreamHost(log, poll_interval=0.01)
        try:
            await svc.start(host, prepared, on_end=on_end)

            async def two_events() -> bool:
                info = await log.info(prepared.stream_id)
                return info is not None and info.length >= 2

            await eventually(two_events)
            assert await host.cancel(prepared.stream_id) is True
            _, events = await log.read(prepared.stream_id)
            info = await log.info(prepared.stream_id)
        finally:
            await host.aclose()
    assert provider.closed == [0] and prepared.generation.state == "cancelled"
    assert prepared.generation.cancel_reason == "stopped"
    assert [e.event for e in events] == ["gen.start", "gen.token", "gen.cancelled"]
    cancelled = parse_event(events[-1].event, events[-1].data)
    assert isinstance(cancelled, Cancelled) and cancelled.reason == "stopped"
    assert info is not None and info.state is StreamState.CANCELLED
    assert ends == [1]


async def test_aclose_releases_providers() -> None:
    provider = ScriptedProvider([text_chunks("x")])
    svc = service(provider)
    await svc.aclose()
    assert provider.aclosed


async def test_a_messages_generation_has_a_msg_id_and_its_input_estimate() -> None:
    svc = service(ScriptedProvider([text_chunks("x")]))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi there"}]}
    prepared = svc.prepare_messages(parse_messages({**body, "max_tokens": 5}))
    assert prepared.stream_id.startswith("msg_") and prepared.surface == "anthropic"
    assert prepared.options == svc.count_tokens(parse_count_tokens(body))
    assert prepared.options["input_tokens"] > 0
    with pytest.raises(ModelNotFound):
        svc.count_tokens(parse_count_tokens({**body, "model": "nope"}))
    await svc.aclose()
