"""Test doubles for the gateway: a scripted provider and scripted httpx upstream streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import orjson

from mianzhang.llm import ChatRequest, Chunk

Step = Chunk | BaseException | asyncio.Event
T = TypeVar("T")


async def play(step: T | BaseException | asyncio.Event) -> T | None:
    """One step of a script: an ``asyncio.Event`` is waited for (``None``), an exception is
    raised, anything else is returned to be yielded."""
    if isinstance(step, asyncio.Event):
        await step.wait()
        return None
    if isinstance(step, BaseException):
        raise step
    return step


@dataclass
class ScriptedProvider:
    """Each ``stream`` call plays the next script: chunks are yielded, exceptions raised, an
    ``asyncio.Event`` is waited for. Records calls and whether each iterator was closed."""

    scripts: list[Sequence[Step]]
    kind: str = "demo"
    calls: list[str] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    closed_event: asyncio.Event = field(default_factory=asyncio.Event)
    aclosed: bool = False

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[Chunk]:
        attempt = len(self.calls)
        self.calls.append(model)
        script = self.scripts[min(attempt, len(self.scripts) - 1)]
        try:
            for step in script:
                chunk = await play(step)
                if chunk is not None:
                    yield chunk
        finally:
            self.closed.append(attempt)
            self.closed_event.set()

    async def aclose(self) -> None:
        self.aclosed = True


def text_chunks(*texts: str, finish: str = "stop") -> list[Step]:
    return [*(Chunk(text=t) for t in texts), Chunk(finish_reason=finish)]


def sse(*payloads: object) -> list[bytes]:
    """``data:`` events for each payload (dicts as JSON, strings as is)."""
    out = []
    for p in payloads:
        data = p if isinstance(p, str) else orjson.dumps(p).decode()
        out.append(f"data: {data}\n\n".encode())
    return out


def chunk_json(
    content: str | None = None,
    *,
    role: bool = False,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
    choices: bool = True,
) -> dict[str, object]:
    delta: dict[str, object] = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    body: dict[str, object] = {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "up-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
    }
    if usage is not None:
        body["usage"] = usage
    return body


class ScriptedBody(httpx.AsyncByteStream):
    """A response body yielding ``parts``; an ``asyncio.Event`` part blocks until set; an
    exception part is raised. Records ``aclose``."""

    def __init__(self, parts: Sequence[bytes | BaseException | asyncio.Event]) -> None:
        self.parts = parts
        self.closed = asyncio.Event()
        self.consumed = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            self.consumed += 1
            data = await play(part)
            if data is not None:
                yield data

    async def aclose(self) -> None:
        self.closed.set()


@dataclass
class Upstream:
    """An ``httpx.MockTransport`` answering each request with the next scripted response."""

    responses: list[Callable[[httpx.Request], httpx.Response] | BaseException]
    requests: list[httpx.Request] = field(default_factory=list)
    bodies: list[ScriptedBody] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        async def handler(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            answer = self.responses[min(len(self.requests) - 1, len(self.responses) - 1)]
            if isinstance(answer, BaseException):
                raise answer
            return answer(request)

        return httpx.MockTransport(handler)

    def stream(
        self,
        parts: Sequence[bytes | BaseException | asyncio.Event],
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Callable[[httpx.Request], httpx.Response]:
        def make(request: httpx.Request) -> httpx.Response:
            body = ScriptedBody(parts)
            self.bodies.append(body)
            return httpx.Response(
                status,
                headers={"content-type": "text/event-stream", **(headers or {})},
                stream=body,
            )

        return make

    @staticmethod
    def error(
        status: int, body: dict[str, object] | None = None, headers: dict[str, str] | None = None
    ) -> Callable[[httpx.Request], httpx.Response]:
        def make(request: httpx.Request) -> httpx.Response:
            return httpx.Response(
                status, json=body or {"error": {"message": f"boom {status}"}}, headers=headers
            )

        return make
