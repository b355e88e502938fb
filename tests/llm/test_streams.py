"""A generation as log entries in each wire format, and the closing entries of a stop."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import orjson

from mianzhang.llm import (
    ChatChunkEncoder,
    ChatRequest,
    Gateway,
    ModelEntry,
    ModelRegistry,
    NativeEncoder,
    ResponsesEncoder,
)
from mianzhang.llm._streams import ChatFormat, NativeFormat, ResponsesFormat, log_entries

from ._fakes import ScriptedProvider, text_chunks

REQUEST = ChatRequest(messages=[{"role": "user", "content": "hi"}])


def gateway(provider: ScriptedProvider) -> Gateway:
    return Gateway(ModelRegistry([ModelEntry("m", provider, "m")], default_model="m"))


async def test_chat_entries_end_with_done() -> None:
    gen = gateway(ScriptedProvider([text_chunks("a", "b")])).start("m", REQUEST)
    fmt = ChatFormat(ChatChunkEncoder(completion_id="c", model="m", created=1))
    entries = [e async for e in log_entries(gen, fmt)]
    assert entries[-1].data == "[DONE]" and all(e.event is None for e in entries)
    text = "".join(
        orjson.loads(e.data)["choices"][0]["delta"].get("content", "") for e in entries[:-1]
    )
    assert text == "ab"


async def test_responses_entries_are_named_by_type() -> None:
    gen = gateway(ScriptedProvider([text_chunks("a")])).start("m", REQUEST)
    fmt = ResponsesFormat(
        ResponsesEncoder(response_id="resp_1", model="m", created=1, background=False)
    )
    entries = [e async for e in log_entries(gen, fmt)]
    assert entries[0].event == "response.created"
    assert entries[-1].event == "response.completed"
    assert all(orjson.loads(e.data)["type"] == e.event for e in entries)


async def test_closing_the_entries_closes_the_generation_and_cancelled_tails() -> None:
    never = asyncio.Event()
    provider = ScriptedProvider([[*text_chunks("a")[:1], never]])
    gen = gateway(provider).start("m", REQUEST)
    native = NativeFormat(
        NativeEncoder(
            stream_id="s", model="m", provider="demo", description="", timings=gen.timings
        )
    )
    async with aclosing(log_entries(gen, native)) as entries:
        names = [(await anext(entries)).event for _ in range(2)]
    assert names == ["start", "content"]
    assert provider.closed == [0] and gen.state == "cancelled"
    tail = native.cancelled(gen, "stop")
    assert tail[0].event == "error"
    body = orjson.loads(tail[0].data)
    assert body["error"]["code"] == "cancelled" and body["partial"] is True
    chat_tail = ChatFormat(ChatChunkEncoder(completion_id="c", model="m", created=1)).cancelled(
        gen, "stop"
    )
    assert orjson.loads(chat_tail[0].data)["error"]["code"] == "cancelled"
    assert chat_tail[1].data == "[DONE]"
    resp = ResponsesFormat(ResponsesEncoder(response_id="r", model="m", created=1, background=True))
    last = orjson.loads(resp.cancelled(gen, "stop")[-1].data)
    assert last["response"]["status"] == "cancelled"
