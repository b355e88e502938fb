"""What every route starting a generation does, whatever API it speaks.

Shared by the LLM API routers (``llm.py``: OpenAI; ``anthropic.py``: Anthropic Messages; and
any other surface's routes): a generation is *admitted* (:func:`admit`: the body parsed, the
caller's token budget checked, the generation prepared, each step raising a typed error that
the route's error shape renders, nothing started yet), then *started* (:func:`start`: its log
stream created and its producer run by the app's runner, the budget charged by the runner's
``on_end`` hook once the stream has ended, however it ended). Answers that are not streamed
wait for the generation in the request, cancelled if the client goes away
(:func:`until_disconnect`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from fastapi import Request
from starlette.responses import Response

from ...llm import LLMService, PreparedStream
from ...log.serve import StreamHost

__all__ = [
    "Admitted",
    "Charge",
    "TokenBudget",
    "admit",
    "client_gone",
    "start",
    "until_disconnect",
]

B = TypeVar("B")
T = TypeVar("T")

Charge = Callable[[], Awaitable[None]]


class TokenBudget(Protocol):
    """Per-caller LLM token limits (the server's rate limiter: ``_deps.Budget``)."""

    async def check(self, request: Request) -> str:
        """Raise ``RateLimited`` if the caller has no tokens left; return its limit key."""
        ...

    async def charge(self, who: str, tokens: int) -> None:
        """Record tokens a generation of ``who`` used."""
        ...


@dataclass(frozen=True, slots=True)
class Admitted(Generic[B]):
    """A generation ready to start: the parsed body, the prepared generation, and the hook
    charging the caller's budget with its usage (``None``: no budget)."""

    body: B
    prepared: PreparedStream
    charge: Charge | None


def _charger(
    budget: TokenBudget | None, who: str | None, prepared: PreparedStream
) -> Charge | None:
    if budget is None or who is None:
        return None

    async def charge() -> None:
        await budget.charge(who, prepared.generation.usage.total_tokens)

    return charge


async def admit(
    request: Request,
    budget: TokenBudget | None,
    parse: Callable[[bytes], B],
    prepare: Callable[[B], PreparedStream],
) -> Admitted[B]:
    """Parse the body, check the caller's token budget, prepare the generation (raising the
    refusal of each step: invalid body, ``RateLimited``, ``ModelNotFound``, ...)."""
    body = parse(await request.body())
    who = await budget.check(request) if budget is not None else None
    prepared = prepare(body)
    return Admitted(body, prepared, _charger(budget, who, prepared))


async def start(llm: LLMService, host: StreamHost, admitted: Admitted[B]) -> None:
    """Create the generation's stream and run it on ``host``'s producer runner."""
    await llm.start(host, admitted.prepared, on_end=admitted.charge)
    # one loop turn: the producer sends the upstream request now, while this request's
    # response is still being set up (time to first token)
    await asyncio.sleep(0)


async def until_disconnect(request: Request, work: Awaitable[T]) -> T | None:
    """``await work``, cancelled (and ``None`` returned) if the client disconnects first."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, watcher):
            if not t.done():
                t.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)
    if task.cancelled():
        return None
    return task.result()


def client_gone() -> Response:
    """The answer nobody reads: the client disconnected before it was ready (499)."""
    return Response(status_code=499)
