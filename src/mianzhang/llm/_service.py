"""The gateway as the server uses it: settings -> providers, metrics, and generation streams.

:class:`LLMService` owns the model registry (and so every provider's connection pool) and the
metrics instruments; :meth:`LLMService.aclose` releases them. It runs no task itself: each
generation is handed to the app's :class:`~mianzhang.log.serve.StreamHost`, whose producer
runner runs it (and cancels it when it is stopped or abandoned).

A generation's stream holds its gateway events in the canonical form (``_canonical.py``),
whatever API started it; the API only decides the stream's *home surface* and that surface's
options, stored in the ``gen.start`` event and the stream's metadata. Guarantees of
:meth:`LLMService.start`: the stream exists when it returns; it ends with exactly one
``gen.finish``, ``gen.error`` or ``gen.cancelled`` (the last written by the runner's
``closing`` hook, shielded, whoever stops it); ``on_end`` is awaited once it has ended.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from ..log import EventLog, LogEntry
from ..log.serve import StreamHost
from ._anthropic_convert import chat_request, count_tokens, estimate_input_tokens
from ._anthropic_requests import MessagesBody, MessagesRequest
from ._canonical import StartRecord, start_meta
from ._gateway import Gateway, Generation
from ._metrics import LLMMetrics
from ._registry import ModelRegistry
from ._requests import ChatCompletionBody, GenerationBody, ResponsesBody
from ._settings import LLMSettings
from ._streams import cancelled_entries, generation_entries
from ._surface import SurfaceContext
from ._types import ChatRequest

__all__ = ["LLMService", "PreparedStream"]


@dataclass
class PreparedStream:
    """A generation ready to run as the producer of log stream ``stream_id``, read by default
    in ``surface`` (its home surface) with ``options``."""

    stream_id: str
    generation: Generation
    surface: str  # "chat", "responses", "native", "anthropic", ...
    background: bool
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.surface

    def record(self) -> StartRecord:
        return StartRecord(self.generation.started(), self.surface, self.options)

    def meta(self) -> dict[str, str]:
        return {**start_meta(self.record()), "background": "1" if self.background else "0"}

    def context(self) -> SurfaceContext:
        """The home surface's context (what its readers' encoders start from)."""
        generation = self.generation
        return SurfaceContext(self.stream_id, generation.model, generation.created, self.options)

    def entries(self) -> AsyncIterator[LogEntry]:
        """The producer: the generation's canonical log entries."""
        return generation_entries(self.generation, self.surface, self.options)

    def closing(self, reason: str) -> list[LogEntry]:
        """The runner's ``closing`` hook: the ``gen.cancelled`` tail."""
        return cancelled_entries(self.generation, reason)


class LLMService:
    """Gateway, registry and metrics of one app (see the module docstring)."""

    def __init__(
        self,
        settings: LLMSettings,
        *,
        metrics_registry: CollectorRegistry,
        registry: ModelRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry or ModelRegistry.from_settings(settings)
        self.metrics = LLMMetrics(metrics_registry)
        self.gateway = Gateway.from_settings(settings, self.registry, self.metrics)

    async def aclose(self) -> None:
        """Close every provider (connection pools, loaded weights)."""
        await self.registry.aclose()

    # -- preparing generations (raise ModelNotFound / InvalidLLMRequest before anything runs)
    def prepare_chat(self, body: ChatCompletionBody) -> PreparedStream:
        generation = self.gateway.start(body.model, body.chat_request())
        stream_id = "chatcmpl-" + secrets.token_hex(12)
        options = {"include_usage": body.include_usage}
        return PreparedStream(stream_id, generation, "chat", body.background, options)

    def prepare_responses(self, body: ResponsesBody) -> PreparedStream:
        generation = self.gateway.start(body.model, body.chat_request())
        response_id = "resp_" + secrets.token_hex(16)
        options = {"background": body.background, "params": body.echo_params()}
        return PreparedStream(response_id, generation, "responses", body.background, options)

    def prepare_native(self, body: GenerationBody) -> PreparedStream:
        generation = self.gateway.start(body.model, body.chat_request())
        stream_id = "gen-" + secrets.token_hex(12)
        return PreparedStream(stream_id, generation, "native", body.background)

    def prepare_messages(self, request: MessagesRequest) -> PreparedStream:
        """An Anthropic Messages request; its stream id is the message id (``msg_…``), and
        ``message_start`` reports the request's estimated input tokens."""
        chat = chat_request(request)
        generation = self.gateway.start(request.body.model, chat)
        stream_id = "msg_" + secrets.token_hex(12)
        options = {"input_tokens": estimate_input_tokens(chat)}
        body = request.body
        background = isinstance(body, MessagesBody) and body.background
        return PreparedStream(stream_id, generation, "anthropic", background, options)

    def count_tokens(self, request: MessagesRequest) -> dict[str, int]:
        """``POST /v1/messages/count_tokens``: ``{"input_tokens": n}`` by the gateway's
        estimate; :class:`~mianzhang.ModelNotFound` for a model that is not configured."""
        self.registry.get(request.body.model)
        return count_tokens(request)

    def prepare_surface(
        self,
        surface: str,
        model: str | None,
        request: ChatRequest,
        *,
        background: bool = False,
        options: dict[str, Any] | None = None,
    ) -> PreparedStream:
        """A generation whose home surface is ``surface`` (``ui``, ``agui``, ...) with that
        surface's ``options`` (stored with the generation, so every reader on every instance
        rebuilds the same ids); its stream id is ``gen-<hex>``."""
        generation = self.gateway.start(model, request)
        stream_id = "gen-" + secrets.token_hex(12)
        return PreparedStream(stream_id, generation, surface, background, dict(options or {}))

    async def create_stream(self, log: EventLog, prepared: PreparedStream) -> None:
        """Create the log stream with the gateway's retention and the generation's metadata."""
        await log.create(
            prepared.stream_id,
            max_events=self.settings.stream_max_events,
            ttl_after_close=self.settings.stream_ttl,
            meta=prepared.meta(),
        )

    async def start(
        self,
        host: StreamHost,
        prepared: PreparedStream,
        *,
        on_end: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Create ``prepared``'s stream and run its generation on ``host``'s producer runner
        (see the module docstring for what the stream then guarantees)."""
        await self.create_stream(host.log, prepared)
        await host.start(
            prepared.stream_id,
            prepared.entries(),
            background=prepared.background,
            closing=prepared.closing,
            on_end=on_end,
        )
