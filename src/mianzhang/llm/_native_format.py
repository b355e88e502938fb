"""The ``native`` surface: the typed-event stream of the web UI and the CLI.

Events (SSE ``event:`` names, JSON data):

* ``start`` — ``{stream_id, model, provider, demo, description, created}``, at once.
* ``content`` — ``{text}``, one per token with text.
* ``reasoning`` — ``{text}``, reasoning ("thinking") text, for models that give it.
* ``tool_call`` — ``{index, id?, name?, arguments}``: a piece of a tool call (OpenAI's delta,
  flattened); pieces with the same ``index`` belong to one call.
* ``progress`` — ``{output_tokens, time_to_first_token_ms, duration_ms, tokens_per_second}``,
  every ``progress_every`` tokens with text; times are the gateway's, stored with each token.
* ``error`` — ``{error: {message, type, param, code}, partial, usage, timings}``; the content
  already sent stays in the log.
* ``complete`` — ``{finish_reason, usage, timings, provider, upstream_model}``.

A stream ends with exactly one ``complete`` or ``error`` (``code: "cancelled"`` for a stop).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .._errors import GenerationCancelled, LLMError
from ._openai_errors import error_payload
from ._surface import SurfaceContext, WireEvent, wire_json
from ._types import Cancelled, Failed, Finished, GenEvent, Started, Timings, Token, Usage

__all__ = ["NATIVE", "NativeEncoder", "NativeSurface"]


def _usage(usage: Usage) -> dict[str, Any]:
    return {**usage.to_openai(), "estimated": usage.estimated}


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"index": call.get("index", 0)}
    if call.get("id"):
        out["id"] = call["id"]
    function = call.get("function") or {}
    if function.get("name"):
        out["name"] = function["name"]
    out["arguments"] = function.get("arguments") or ""
    return out


class NativeEncoder:
    """Encodes the events of one generation as native events ``(event name, json)``."""

    def __init__(self, *, stream_id: str, model: str, progress_every: int = 16) -> None:
        self.stream_id = stream_id
        self._model = model
        self._progress_every = progress_every
        self._tokens = 0
        self._reported: Usage | None = None
        self._first: float | None = None
        self._ended = False

    def _token(self, token: Token) -> list[WireEvent]:
        chunk = token.chunk
        if chunk.usage is not None:
            self._reported = chunk.usage
        if self._first is None:
            self._first = token.elapsed
        out: list[WireEvent] = []
        if chunk.reasoning:
            out.append(("reasoning", wire_json({"text": chunk.reasoning})))
        if chunk.text:
            self._tokens += 1
            out.append(("content", f'{{"text":{wire_json(chunk.text)}}}'))
            if self._tokens % self._progress_every == 0:
                out.append(("progress", self._progress(token.elapsed)))
        if chunk.tool_calls:
            out.extend(("tool_call", wire_json(_tool_call(call))) for call in chunk.tool_calls)
        return out

    def _progress(self, elapsed: float | None) -> str:
        done = self._reported.completion_tokens if self._reported else self._tokens
        timings = Timings(self._first, elapsed or 0.0, done)
        return wire_json({"output_tokens": self._tokens, **timings.to_json()})

    def _start(self, event: Started) -> list[WireEvent]:
        start = {
            "stream_id": self.stream_id,
            "model": self._model,
            "provider": event.provider,
            "demo": event.provider == "demo",
            "description": event.description,
            "created": event.created,
        }
        return [("start", wire_json(start))]

    def encode(self, event: GenEvent) -> list[WireEvent]:
        if isinstance(event, Token):
            return self._token(event)
        if isinstance(event, Started):
            return self._start(event)
        self._ended = True
        if isinstance(event, Finished):
            complete = {
                "finish_reason": event.finish_reason,
                "usage": _usage(event.usage),
                "timings": event.timings.to_json(),
                "provider": event.provider,
                "upstream_model": event.upstream_model,
            }
            return [("complete", wire_json(complete))]
        if isinstance(event, Cancelled):
            error: LLMError = GenerationCancelled(event.reason)
            return self._failed(error, event.usage, event.timings, partial=event.partial)
        assert isinstance(event, Failed)
        return self._failed(event.error, event.usage, event.timings, partial=event.partial)

    def end(self) -> list[WireEvent]:
        return []

    def _failed(
        self, error: LLMError, usage: Usage, timings: Timings, *, partial: bool
    ) -> list[WireEvent]:
        """The ``error`` event closing a failed or cancelled stream."""
        body = {
            **error_payload(error),
            "partial": partial,
            "usage": _usage(usage),
            "timings": timings.to_json(),
        }
        return [("error", wire_json(body))]

    @property
    def ended(self) -> bool:
        return self._ended


class NativeSurface:
    """The ``native`` surface (no options)."""

    name = "native"
    media_type = "text/event-stream"
    headers: Mapping[str, str] = MappingProxyType({})

    def encoder(self, context: SurfaceContext) -> NativeEncoder:
        return NativeEncoder(stream_id=context.stream_id, model=context.model)


NATIVE = NativeSurface()
