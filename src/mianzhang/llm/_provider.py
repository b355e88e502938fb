"""The provider contract: a request in, an async iterator of chunks out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from ._types import ChatRequest, Chunk

__all__ = ["Provider", "RequestCheck"]


@runtime_checkable
class Provider(Protocol):
    """A source of generations: the built-in demo, an OpenAI-compatible upstream, a local model.

    Contract:

    * ``stream`` returns an async iterator; nothing is sent upstream before it is first
      iterated. Its chunks arrive in generation order; the last one carries ``finish_reason``.
    * Every failure is raised as an :class:`~mianzhang.UpstreamError` subclass (errors of
      httpx, transformers, ... are translated at this boundary) with ``retryable`` set.
    * Closing the iterator (``aclose()``, or cancelling the task iterating it) stops the
      generation and releases what it held: the upstream HTTP request is closed, a local
      model's worker thread is told to stop and is awaited. Nothing keeps running.
    * ``aclose`` releases pooled resources (connection pools, loaded weights).
    """

    kind: str  # "demo", "openai", "local": the gen_ai.provider.name label

    def stream(self, model: str, request: ChatRequest) -> AsyncIterator[Chunk]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class RequestCheck(Protocol):
    """A provider that refuses some requests before anything streams: ``check_request``
    raises :class:`~mianzhang.UpstreamUnsupported` (a 400) for a request it cannot serve
    faithfully (the demo model and ``tools``), so the client learns it from the status of its
    request instead of from an answer that silently ignored part of it."""

    def check_request(self, request: ChatRequest) -> None: ...
