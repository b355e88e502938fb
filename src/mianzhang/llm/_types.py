"""Plain data passed between providers, the gateway, the log and the surfaces. No I/O.

A provider turns a :class:`ChatRequest` into :class:`Chunk` objects; the gateway turns those
into :data:`GenEvent` objects (``Started``, ``Token``, then one of ``Finished``, ``Failed``,
``Cancelled``). Those events are what a generation's log stream holds (``_canonical.py``) and
what every surface (chat completion chunks, Responses API events, the native UI stream, ...)
encodes at read time, so they carry everything an encoder needs: no encoder asks a clock or
the live generation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._errors import LLMError

__all__ = [
    "Cancelled",
    "ChatRequest",
    "Chunk",
    "Failed",
    "Finished",
    "GenEvent",
    "Started",
    "Timings",
    "Token",
    "Usage",
]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one generation. ``estimated`` is true when a count was made by the
    gateway (the upstream gave none) rather than reported by the model's tokenizer."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> dict[str, int]:
        """The ``usage`` object of a chat completion."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }

    def to_responses(self) -> dict[str, Any]:
        """The ``usage`` object of a Responses API response."""
        return {
            "input_tokens": self.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": self.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What a provider is asked to generate.

    ``messages`` are OpenAI chat message objects exactly as the client sent them; ``params`` the
    other OpenAI sampling parameters to pass on unchanged (``temperature``, ``top_p``, ``stop``,
    ``seed``, ``tools``, ...). ``max_tokens`` is pulled out because every provider honours it.
    """

    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def prompt_text(self) -> str:
        """The text content of all messages joined by newlines (for local models, counting)."""
        parts: list[str] = []
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(
                    p["text"]
                    for p in content
                    if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
        return "\n".join(parts)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a generation, as a provider yields it.

    ``text`` is new output text (``""`` for a chunk carrying only a role, a finish reason or
    usage). ``raw`` is the upstream ``chat.completion.chunk`` JSON text when the provider is an
    OpenAI-compatible upstream: the chat format passes it through byte for byte. ``tool_calls``
    are the upstream's tool-call deltas in OpenAI's shape (``{index, id?, type?, function:
    {name?, arguments?}}``): the gateway's one tool-call form, translated at each provider and
    surface. ``reasoning`` is new reasoning ("thinking") text, for models that expose it.
    """

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    raw: str | None = None
    role: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    reasoning: str = ""

    @property
    def is_token(self) -> bool:
        """Whether this chunk carries output a client would see (text, reasoning or tool
        calls)."""
        return bool(self.text) or bool(self.tool_calls) or bool(self.reasoning)


@dataclass(frozen=True, slots=True)
class Timings:
    """Seconds measured by the gateway for one generation (``None``: not reached)."""

    time_to_first_token: float | None
    duration: float
    output_tokens: int

    @property
    def tokens_per_second(self) -> float | None:
        """Output tokens per second after the first token (``None`` below two tokens)."""
        if self.time_to_first_token is None or self.output_tokens < 2:
            return None
        span = self.duration - self.time_to_first_token
        return (self.output_tokens - 1) / span if span > 0 else None

    def to_json(self) -> dict[str, Any]:
        ttft = self.time_to_first_token
        tps = self.tokens_per_second
        return {
            "time_to_first_token_ms": None if ttft is None else round(ttft * 1000, 3),
            "duration_ms": round(self.duration * 1000, 3),
            "tokens_per_second": None if tps is None else round(tps, 3),
        }


@dataclass(frozen=True, slots=True)
class Started:
    """The generation was accepted; nothing has been asked of an upstream yet.

    ``provider`` and ``description`` are those of the first model of the chain (the one the
    generation is meant to run on; a fallback may serve it in the end, see ``Finished``)."""

    model: str
    created: int  # unix seconds
    provider: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class Token:
    """Output to deliver. The first ``Token`` of a generation carries the first text.

    ``elapsed`` is the gateway's clock at delivery, in seconds since the generation started
    (the chunks held back until the first token, and the first token itself, carry the time
    of the first token); ``None`` when unknown."""

    chunk: Chunk
    elapsed: float | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    """The generation ended normally (``finish_reason`` is ``stop``, ``length``, ...)."""

    finish_reason: str
    usage: Usage
    timings: Timings
    provider: str
    upstream_model: str
    usage_reported: bool  # the provider sent usage (else the gateway counted it)
    completed_at: int | None = None  # unix seconds (None: unknown)


@dataclass(frozen=True, slots=True)
class Failed:
    """The generation failed. ``partial`` is true when output was already delivered (it stays
    in the log: the error is an in-stream event after it)."""

    error: LLMError
    usage: Usage
    timings: Timings
    partial: bool


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The generation was stopped before it ended (``reason``: ``stopped``, ``abandoned``,
    ``shutdown``, ``client_disconnect``); what was delivered stays delivered."""

    reason: str
    usage: Usage
    timings: Timings
    partial: bool


GenEvent = Started | Token | Finished | Failed | Cancelled
