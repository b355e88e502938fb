"""The built-in demo model: no network, no key, a deterministic answer.

It is not a language model and says so in its own answer and in ``/v1/models``. It exists so
``mianzhang serve`` streams something out of the box and so tests and benchmarks have a
provider with exactly known output and timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from .._errors import UpstreamUnsupported
from ._tokens import estimate_prompt_tokens
from ._types import ChatRequest, Chunk, Usage

__all__ = ["DEMO_DESCRIPTION", "DemoProvider", "demo_answer"]

DEMO_DESCRIPTION: Final = (
    "Built-in demo model (not an LLM): streams a fixed, deterministic answer without any "
    "network access or API key. It calls no tools: a request with tools is refused (use the "
    "scripted model to test tool calls)."
)

_FILLER: Final = (
    "Every token you see was written to an append-only event log before it was sent, so a "
    "reader that reconnects with its last event id continues exactly where it stopped, on "
    "any instance that shares the log. When nobody has been reading for the grace period, "
    "the generation is cancelled, because tokens cost money. Configure a real model with an "
    "OpenAI-compatible upstream to get real answers."
)


def demo_answer(prompt: str, tokens: int) -> list[str]:
    """The demo's answer to ``prompt`` as ``tokens`` text pieces (words with their spacing).

    Deterministic: the same prompt and count always give the same pieces.
    """
    words = prompt.split()
    quoted = " ".join(words[:8]) + (" ..." if len(words) > 8 else "")
    intro = (
        "This is mianzhang's demo model, not a language model. "
        f"You wrote {len(words)} words" + (f', starting with "{quoted}". ' if words else ". ")
    )
    source = (intro + _FILLER).split(" ")
    pieces: list[str] = []
    i = 0
    while len(pieces) < tokens:
        word = source[i % len(source)]
        pieces.append(word if not pieces else " " + word)
        i += 1
    return pieces


class DemoProvider:
    """Streams :func:`demo_answer` after ``ttft`` seconds, one piece every ``token_delay``.

    ``tokens`` pieces are sent (or ``max_tokens`` if smaller: then ``finish_reason`` is
    ``length``; a ``max_tokens`` of at least ``tokens`` cuts nothing: ``stop``). Usage is
    exact: one completion token per piece. Closing the iterator stops it at once; nothing else
    is held. A request with ``tools`` is refused (:meth:`check_request`): the demo never calls
    one, and answering as if there were none would hide that from the caller.
    """

    kind = "demo"

    def __init__(
        self,
        *,
        ttft: float = 0.3,
        token_delay: float = 0.04,
        tokens: int = 120,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if ttft < 0 or token_delay < 0 or tokens < 1:
            raise ValueError("demo needs ttft >= 0, token_delay >= 0 and tokens >= 1")
        self.ttft = ttft
        self.token_delay = token_delay
        self.tokens = tokens
        self._sleep = sleep

    def check_request(self, request: ChatRequest) -> None:
        """Refuse ``tools`` (a 400 before anything streams; see the class docstring)."""
        if request.params.get("tools"):
            raise UpstreamUnsupported(
                "the demo model calls no tools: send the request without tools, or use the"
                " scripted model (provider 'scripted') to test tool calls"
            )

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[Chunk]:
        self.check_request(request)
        limit = self.tokens
        finish = "stop"
        if request.max_tokens is not None and request.max_tokens < limit:
            limit, finish = max(request.max_tokens, 0), "length"
        pieces = demo_answer(request.prompt_text(), limit)
        await self._sleep(self.ttft)
        for i, piece in enumerate(pieces):
            if i and self.token_delay:
                await self._sleep(self.token_delay)
            yield Chunk(text=piece)
        usage = Usage(estimate_prompt_tokens(request.messages), len(pieces))
        yield Chunk(finish_reason=finish, usage=usage)

    async def aclose(self) -> None:
        return None
