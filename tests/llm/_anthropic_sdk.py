"""Reading wire events with the real ``anthropic`` SDK (its own SSE decoder, stream parser and
message accumulator), over an ``httpx2.MockTransport`` that answers with our bytes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import anthropic
import httpx2
import orjson
from anthropic.types import Message

from mianzhang.llm import LLMError
from mianzhang.llm._anthropic_surface import AnthropicEncoder
from mianzhang.llm._surface import SurfaceContext, WireEvent
from mianzhang.llm._types import (
    Cancelled,
    Chunk,
    Failed,
    Finished,
    GenEvent,
    Started,
    Timings,
    Token,
    Usage,
)

TIMINGS = Timings(0.1, 0.2, 3)
REQUEST: dict[str, Any] = {
    "model": "m",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}


def sse_bytes(wire: Iterable[WireEvent]) -> bytes:
    """SSE framing of wire events (``event:`` + one ``data:`` line each)."""
    out = bytearray()
    for name, data in wire:
        if name is not None:
            out += f"event: {name}\n".encode()
        out += f"data: {data}\n\n".encode()
    return bytes(out)


def encode_all(
    events: Sequence[GenEvent], context: SurfaceContext | None = None
) -> list[WireEvent]:
    encoder = AnthropicEncoder(context or SurfaceContext("msg_test", "m", 1))
    wire: list[WireEvent] = []
    for event in events:
        wire += encoder.encode(event)
    return wire + encoder.end()


def client_for(body: bytes, status: int = 200) -> anthropic.AsyncAnthropic:
    """An SDK client whose every request is answered with ``body`` (SSE when 200)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        kind = "text/event-stream" if status == 200 else "application/json"
        return httpx2.Response(status, headers={"content-type": kind}, content=body)

    return anthropic.AsyncAnthropic(
        api_key="sk-test",
        base_url="http://gateway.test",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )


async def sdk_final_message(wire: Iterable[WireEvent]) -> Message:
    """What ``messages.stream(...).get_final_message()`` returns for these wire events."""
    client = client_for(sse_bytes(wire))
    try:
        async with client.messages.stream(**REQUEST) as stream:
            return await stream.get_final_message()
    finally:
        await client.close()


async def sdk_events(wire: Iterable[WireEvent]) -> list[Any]:
    """The raw events ``messages.create(stream=True)`` yields for these wire events."""
    client = client_for(sse_bytes(wire))
    try:
        stream = await client.messages.create(**REQUEST, stream=True)
        return [event async for event in stream]
    finally:
        await client.close()


def finished(reason: str = "stop", usage: Usage | None = None) -> Finished:
    return Finished(reason, usage or Usage(5, 3), TIMINGS, "demo", "m", True)


def failed(error: LLMError) -> Failed:
    return Failed(error, Usage(5, 1), TIMINGS, partial=True)


def cancelled(reason: str = "stopped") -> Cancelled:
    return Cancelled(reason, Usage(5, 1), TIMINGS, partial=True)


def tokens(*chunks: Chunk) -> list[GenEvent]:
    return [Started("m", 1), *(Token(c) for c in chunks)]


def call(index: int, *, id: str | None = None, name: str | None = None, args: str = "") -> Chunk:
    """A chunk with one OpenAI tool-call delta."""
    delta: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if id is not None:
        delta["id"] = id
        delta["type"] = "function"
    if name is not None:
        delta["function"]["name"] = name
    return Chunk(tool_calls=[delta])


def payloads(wire: Iterable[WireEvent]) -> list[dict[str, Any]]:
    return [orjson.loads(data) for _, data in wire]
