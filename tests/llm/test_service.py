"""LLMService: preparing generations per API, and producers that always end their stream."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import orjson
import pytest
from prometheus_client import CollectorRegistry

from mianzhang.llm import LLMSettings, ModelEntry, ModelNotFound, ModelRegistry
from mianzhang.llm._requests import ChatCompletionBody, GenerationBody, ResponsesBody
from mianzhang.llm._service import LLMService
from mianzhang.log import MemoryEventLog

from ._fakes import ScriptedProvider, text_chunks


def service(provider: ScriptedProvider) -> LLMService:
    registry = ModelRegistry([ModelEntry("m", provider, "m")], default_model="m")
    return LLMService(LLMSettings(), metrics_registry=CollectorRegistry(), registry=registry)


async def run_into_log(svc: LLMService, log: MemoryEventLog, prepared: object) -> None:
    async with aclosing(LLMService.producer(log, prepared)) as entries:  # type: ignore[arg-type]
        async for entry in entries:
            await log.append(prepared.stream_id, entry.data, event=entry.event)  # type: ignore[attr-defined]


async def test_chat_stream_in_the_log_ends_with_done() -> None:
    svc = service(ScriptedProvider([text_chunks("x", "y")]))
    body = ChatCompletionBody(messages=[{"role": "user", "content": "hi"}], stream=True)
    prepared = svc.prepare_chat(body)
    assert prepared.stream_id.startswith("chatcmpl-") and prepared.kind == "chat"
    async with MemoryEventLog() as log:
        await svc.create_stream(log, prepared)
        info = await log.info(prepared.stream_id)
        assert info is not None and info.meta["kind"] == "llm.chat" and info.meta["model"] == "m"
        await run_into_log(svc, log, prepared)
        _, events = await log.read(prepared.stream_id)
    assert events[-1].data == "[DONE]"
    assert orjson.loads(events[0].data)["id"] == prepared.stream_id


async def test_unknown_model_is_refused_when_preparing() -> None:
    svc = service(ScriptedProvider([text_chunks("x")]))
    with pytest.raises(ModelNotFound):
        svc.prepare_native(GenerationBody(model="zz", messages=[{"role": "user", "content": "x"}]))


async def test_cancelled_producer_appends_the_cancelled_tail() -> None:
    never = asyncio.Event()
    provider = ScriptedProvider([[*text_chunks("a")[:1], never]])
    svc = service(provider)
    prepared = svc.prepare_responses(ResponsesBody(input="hi", background=True))
    assert prepared.stream_id.startswith("resp_") and prepared.background
    async with MemoryEventLog() as log:
        await svc.create_stream(log, prepared)
        task = asyncio.create_task(run_into_log(svc, log, prepared))
        try:
            async with asyncio.timeout(10):
                while not provider.calls or (await log.info(prepared.stream_id)).length < 5:  # type: ignore[union-attr]
                    await asyncio.sleep(0.005)
        finally:
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        _, events = await log.read(prepared.stream_id)
    assert provider.closed == [0]
    last = orjson.loads(events[-1].data)
    assert events[-1].event == "response.failed" and last["response"]["status"] == "cancelled"
    seqs = [orjson.loads(e.data)["sequence_number"] for e in events]
    assert seqs == [e.seq - 1 for e in events]  # sequence_number == log seq - 1
    assert prepared.generation.state == "cancelled"


async def test_aclose_releases_providers() -> None:
    provider = ScriptedProvider([text_chunks("x")])
    svc = service(provider)
    await svc.aclose()
    assert provider.aclosed
