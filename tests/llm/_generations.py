"""Generations for surface tests: real gateway events from the scripted provider.

:func:`generate` runs a script through the real :class:`Gateway` (a step clock makes the
timings exact) and returns its events; :func:`cancelled` turns them into a generation stopped
after its ``n``-th event; :func:`encode` and :func:`sse` give a surface's wire events and the
SSE text a reader would send (with ids, as the log reader adds them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mianzhang._sse import ServerSentEvent
from mianzhang.llm import Gateway, ModelEntry, ModelRegistry, RetryPolicy
from mianzhang.llm._scripted import ScriptedProvider
from mianzhang.llm._surface import Surface, SurfaceContext, WireEvent
from mianzhang.llm._types import (
    Cancelled,
    ChatRequest,
    Failed,
    Finished,
    GenEvent,
    Timings,
    Token,
    Usage,
)


class StepClock:
    """A gateway clock that advances ``step`` seconds per reading (a quarter by default),
    from ``start``."""

    def __init__(self, start: float = 0.0, step: float = 0.25) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


async def _no_sleep(_: float) -> None:
    return None


async def generate(
    script: list[Any] | None = None,
    *,
    messages: list[dict[str, Any]] | None = None,
    max_tokens: int | None = None,
) -> list[GenEvent]:
    """The gateway events of one generation of the scripted model playing ``script`` (sent
    as the last user message) or answering ``messages``."""
    provider = ScriptedProvider(sleep=_no_sleep)
    registry = ModelRegistry(
        [ModelEntry("scripted", provider, "scripted")], default_model="scripted"
    )
    gateway = Gateway(
        registry, retry=RetryPolicy(max_retries=0), clock=StepClock(), sleep=_no_sleep
    )
    if messages is None:
        messages = [{"role": "user", "content": json.dumps({"script": script})}]
    generation = gateway.start("scripted", ChatRequest(messages, max_tokens=max_tokens))
    return [event async for event in generation.events()]


def cancelled(events: Sequence[GenEvent], after: int, reason: str = "stopped") -> list[GenEvent]:
    """The first ``after`` events (never the terminal one), then ``Cancelled``."""
    kept = [e for e in events[:after] if not isinstance(e, Finished | Failed)]
    tokens = sum(1 for e in kept if isinstance(e, Token) and e.chunk.text)
    ending = Cancelled(reason, Usage(10, tokens), Timings(0.5, 1.0, tokens), partial=True)
    return [*kept, ending]


def context(**options: Any) -> SurfaceContext:
    return SurfaceContext("gen-1", "scripted", 1_700_000_000, options)


def encode(surface: Surface, events: Sequence[GenEvent], **options: Any) -> list[WireEvent]:
    """Every wire event of ``events`` in ``surface``, ``end()`` included."""
    encoder = surface.encoder(context(**options))
    return [w for event in events for w in encoder.encode(event)] + encoder.end()


def payloads(wire: Sequence[WireEvent]) -> list[Any]:
    """The JSON data of each wire event (``[DONE]`` kept as the string)."""
    return [data if data == "[DONE]" else json.loads(data) for _, data in wire]


def sse(wire: Sequence[WireEvent]) -> str:
    """The SSE text of ``wire`` as a log reader sends it (ids 1, 2, ...)."""
    return b"".join(
        ServerSentEvent(data, event=name, id=str(i)).encode()
        for i, (name, data) in enumerate(wire, 1)
    ).decode()
