"""A generation whose instance died: the entries its lease keeps (``cancelled_entries(...,
"producer_lost")``: a ``gen.error`` of :class:`GenerationLost`) are read by every surface as
its own failure shape, with the stable type ``producer_lost``."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from mianzhang import SSEDecoder
from mianzhang.llm import ChatRequest, Failed, GenerationLost, Token, surface_events
from mianzhang.llm._agui_surface import AGUISurface
from mianzhang.llm._anthropic_surface import AnthropicSurface
from mianzhang.llm._canonical import (
    StartRecord,
    parse_event,
    start_entry,
    start_meta,
    token_entry,
)
from mianzhang.llm._chat_format import CHAT
from mianzhang.llm._native_format import NATIVE
from mianzhang.llm._responses_format import RESPONSES
from mianzhang.llm._streams import cancelled_entries
from mianzhang.llm._surface import Surface
from mianzhang.llm._ui_surface import UISurface
from mianzhang.log import MemoryEventLog, StreamState
from mianzhang.log._protocol import PRODUCER_LOST

from ._fakes import ScriptedProvider, text_chunks
from .test_streams import REQUEST, gateway


async def lost_stream(log: MemoryEventLog) -> None:
    """A chat generation that logged its start and two tokens, then its instance died: the
    lease's entries end it (as any instance applying the expired lease does)."""
    generation = gateway(ScriptedProvider([text_chunks("Hel", "lo")])).start("m", REQUEST)
    lost = cancelled_entries(generation, PRODUCER_LOST)  # what the runner keeps at start
    record = StartRecord(generation.started(), "chat", {})
    await log.create("g", meta=start_meta(record))
    start = start_entry(generation.started(), "chat", {})
    await log.append("g", start.data, event=start.event)
    async for event in generation.events():
        if isinstance(event, Token):
            entry = token_entry(event)
            await log.append("g", entry.data, event=entry.event)
    assert await log.lease("g", "dead", ttl=0.01, entries=lost)
    # nobody renews: the memory log applies it when the ttl has passed


async def read(log: MemoryEventLog, surface: Surface) -> list[Any]:
    raw = b""
    async with asyncio.timeout(10):
        async for item in surface_events(log, "g", surface):
            raw += item if isinstance(item, bytes) else item.encode()
    return SSEDecoder().decode(raw)


def test_the_lost_entries_are_a_gen_error_of_type_producer_lost() -> None:
    generation = gateway(ScriptedProvider([text_chunks("a")])).start("m", ChatRequest([]))
    [entry] = cancelled_entries(generation, PRODUCER_LOST)
    assert entry.event == "gen.error"
    assert orjson.loads(entry.data)["error"]["kind"] == "producer_lost"
    event = parse_event(entry.event, entry.data)
    assert isinstance(event, Failed) and isinstance(event.error, GenerationLost)
    [stopped] = cancelled_entries(generation, "stopped")
    assert stopped.event == "gen.cancelled"


async def test_every_surface_ends_a_lost_generation_with_its_error_shape() -> None:
    async with MemoryEventLog() as log:
        await lost_stream(log)
        chat = await read(log, CHAT)  # follows until the lease is applied
        info = await log.info("g")
        assert info is not None and info.state is StreamState.FAILED
        assert chat[-1].data == "[DONE]"
        error = orjson.loads(chat[-2].data)["error"]
        assert (error["type"], error["code"]) == ("producer_lost", "producer_lost")
        text = "".join(
            c["delta"].get("content") or ""
            for e in chat[:-2]
            for c in orjson.loads(e.data)["choices"]
        )
        assert text == "Hello"  # what was logged before the death stays readable

        responses = await read(log, RESPONSES)
        assert responses[-1].event == "response.failed"
        failed = orjson.loads(responses[-1].data)["response"]
        assert failed["status"] == "failed" and failed["error"]["code"] == "producer_lost"

        native = await read(log, NATIVE)
        assert native[-1].event == "error"
        assert orjson.loads(native[-1].data)["error"]["type"] == "producer_lost"

        ui = [orjson.loads(e.data) for e in await read(log, UISurface()) if e.data != "[DONE]"]
        kinds = [chunk["type"] for chunk in ui]
        assert "error" in kinds and kinds[-1] == "finish"
        assert ui[-1]["finishReason"] == "error"

        agui = [orjson.loads(e.data) for e in await read(log, AGUISurface())]
        assert agui[-1]["type"] == "RUN_ERROR" and agui[-1]["code"] == "producer_lost"

        anthropic = await read(log, AnthropicSurface())
        assert anthropic[-1].event == "error"
        assert orjson.loads(anthropic[-1].data)["type"] == "error"
