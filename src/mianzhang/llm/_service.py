"""The gateway as the server uses it: settings -> providers, metrics, and log producers.

:class:`LLMService` owns the model registry (and so every provider's connection pool) and the
metrics instruments; :meth:`LLMService.aclose` releases them. It does not run tasks itself: it
hands each generation to the server as a *producer* (an async iterator of
:class:`LogEntry`) for the app's producer registry to run and cancel.

Producers guarantee: the entries are the generation's wire format in order; if the producer is
closed or cancelled before the generation ended (a stop, abandonment, shutdown), it appends the
format's closing "cancelled" entries to the log itself (shielded) before it finishes, so every
stream in the log ends with exactly one final event, whoever reads it later and wherever.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from .._errors import LogError
from ..log import EventLog
from ..log._producers import complete_shielded
from ._chat_format import ChatChunkEncoder
from ._gateway import Gateway, Generation
from ._metrics import LLMMetrics
from ._native_format import NativeEncoder
from ._registry import ModelRegistry
from ._requests import ChatCompletionBody, GenerationBody, ResponsesBody
from ._responses_format import ResponsesEncoder
from ._settings import LLMSettings
from ._streams import (
    ChatFormat,
    LogEntry,
    NativeFormat,
    ResponsesFormat,
    StreamFormat,
    log_entries,
)

__all__ = ["LLMService", "PreparedStream"]


@dataclass
class PreparedStream:
    """A generation ready to run as the producer of log stream ``stream_id``."""

    stream_id: str
    generation: Generation
    format: StreamFormat
    background: bool
    kind: str  # "chat", "responses", "native"

    def meta(self) -> dict[str, str]:
        return {
            "kind": f"llm.{self.kind}",
            "model": self.generation.model,
            "background": "1" if self.background else "0",
            "created": str(self.generation.created),
        }


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
        encoder = ChatChunkEncoder(
            completion_id=stream_id,
            model=generation.model,
            created=generation.created,
            include_usage=body.include_usage,
        )
        return PreparedStream(stream_id, generation, ChatFormat(encoder), body.background, "chat")

    def prepare_responses(self, body: ResponsesBody) -> PreparedStream:
        generation = self.gateway.start(body.model, body.chat_request())
        response_id = "resp_" + secrets.token_hex(16)
        encoder = ResponsesEncoder(
            response_id=response_id,
            model=generation.model,
            created=generation.created,
            background=body.background,
            params=body.echo_params(),
        )
        return PreparedStream(
            response_id, generation, ResponsesFormat(encoder), body.background, "responses"
        )

    def prepare_native(self, body: GenerationBody) -> PreparedStream:
        generation = self.gateway.start(body.model, body.chat_request())
        stream_id = "gen-" + secrets.token_hex(12)
        entry = generation.entry
        encoder = NativeEncoder(
            stream_id=stream_id,
            model=generation.model,
            provider=entry.kind,
            description=entry.description,
            timings=generation.timings,
        )
        return PreparedStream(
            stream_id, generation, NativeFormat(encoder), body.background, "native"
        )

    async def create_stream(self, log: EventLog, prepared: PreparedStream) -> None:
        """Create the log stream with the gateway's retention and the generation's metadata."""
        await log.create(
            prepared.stream_id,
            max_events=self.settings.stream_max_events,
            ttl_after_close=self.settings.stream_ttl,
            meta=prepared.meta(),
        )

    @staticmethod
    async def producer(log: EventLog, prepared: PreparedStream) -> AsyncIterator[LogEntry]:
        """The entries of ``prepared``'s generation; on early close, the cancelled tail is
        appended to ``log`` directly (see the module docstring)."""
        ended = False
        try:
            async with aclosing(log_entries(prepared.generation, prepared.format)) as entries:
                try:
                    async for entry in entries:
                        yield entry
                except asyncio.CancelledError as exc:
                    prepared.generation.note_cancel(exc)  # before the generation is closed
                    raise
            ended = True
        finally:
            if not ended:
                generation = prepared.generation
                tail = prepared.format.cancelled(generation, generation.cancel_reason)
                await complete_shielded(_append_all(log, prepared.stream_id, tail))


async def _append_all(log: EventLog, stream: str, entries: list[LogEntry]) -> None:
    """Append ``entries``; a stream already closed (or gone) keeps what it has."""
    with contextlib.suppress(LogError):
        for entry in entries:
            await log.append(stream, entry.data, event=entry.event)
