"""The native typed-event stream of the web UI and the CLI.

Events (SSE ``event:`` names, JSON data):

* ``start`` — ``{stream_id, model, provider, demo, description, created}``, at once.
* ``content`` — ``{text}``, one per token.
* ``progress`` — ``{output_tokens, elapsed_ms, time_to_first_token_ms, tokens_per_second}``,
  every ``progress_every`` tokens.
* ``error`` — ``{error: {message, type, param, code}, partial, usage, timings}``; the content
  already sent stays in the log.
* ``complete`` — ``{finish_reason, usage, timings, provider, upstream_model}``.

A stream ends with exactly one ``complete`` or ``error`` (``code: "cancelled"`` for a stop).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from .._errors import LLMError
from ._openai_errors import error_payload
from ._types import Failed, Finished, GenEvent, Started, Timings, Token, Usage

__all__ = ["NativeEncoder"]

Encoded = tuple[str, str]


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _usage(usage: Usage) -> dict[str, Any]:
    return {**usage.to_openai(), "estimated": usage.estimated}


class NativeEncoder:
    """Encodes the events of one generation as native events ``(event name, json)``."""

    def __init__(
        self,
        *,
        stream_id: str,
        model: str,
        provider: str,
        description: str,
        timings: Callable[[], Timings],
        progress_every: int = 16,
    ) -> None:
        self.stream_id = stream_id
        self._model = model
        self._provider = provider
        self._description = description
        self._timings = timings
        self._progress_every = progress_every
        self._tokens = 0
        self._ended = False

    def encode(self, event: GenEvent) -> list[Encoded]:
        if isinstance(event, Token):
            text = event.chunk.text
            if not text:
                return []
            self._tokens += 1
            out = [("content", _dumps({"text": text}))]
            if self._tokens % self._progress_every == 0:
                timings = self._timings()
                out.append(
                    ("progress", _dumps({"output_tokens": self._tokens, **timings.to_json()}))
                )
            return out
        if isinstance(event, Started):
            start = {
                "stream_id": self.stream_id,
                "model": self._model,
                "provider": self._provider,
                "demo": self._provider == "demo",
                "description": self._description,
                "created": event.created,
            }
            return [("start", _dumps(start))]
        self._ended = True
        if isinstance(event, Finished):
            complete = {
                "finish_reason": event.finish_reason,
                "usage": _usage(event.usage),
                "timings": event.timings.to_json(),
                "provider": event.provider,
                "upstream_model": event.upstream_model,
            }
            return [("complete", _dumps(complete))]
        assert isinstance(event, Failed)
        return self.failed(event.error, event.usage, event.timings, partial=event.partial)

    def failed(
        self, error: LLMError, usage: Usage, timings: Timings, *, partial: bool
    ) -> list[Encoded]:
        """The ``error`` event closing a failed or cancelled stream."""
        self._ended = True
        body = {
            **error_payload(error),
            "partial": partial,
            "usage": _usage(usage),
            "timings": timings.to_json(),
        }
        return [("error", _dumps(body))]

    @property
    def ended(self) -> bool:
        return self._ended
