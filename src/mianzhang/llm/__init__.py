"""Layer 4: the LLM streaming gateway (providers, model registry, surfaces, metrics).

A generation is logged once in its canonical form (its gateway events) and read in any
surface (``chat``, ``responses``, ``native``, ...); see ``_streams.py`` for one token's way
from the provider to the socket.

``LocalProvider`` (extra ``local``: transformers + torch) is imported lazily, on first
attribute access, so ``mianzhang.llm`` imports without torch installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import (
    GenerationCancelled,
    GenerationLost,
    InvalidLLMRequest,
    LLMError,
    ModelNotFound,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from ._chat_format import DONE, ChatChunkEncoder, ChatCompletionCollector
from ._demo import DEMO_DESCRIPTION, DemoProvider, demo_answer
from ._gateway import Gateway, Generation, GenerationState
from ._metrics import LLMMetrics
from ._native_format import NativeEncoder
from ._openai import OpenAIProvider
from ._openai_errors import error_payload, error_status
from ._provider import Provider
from ._reader import surface_events
from ._registry import ModelEntry, ModelRegistry
from ._responses_format import ResponsesEncoder
from ._responses_input import ResponseSnapshot, responses_input_to_messages
from ._retry import RetryPolicy, parse_retry_after, retryable_status
from ._service import LLMService, PreparedStream
from ._settings import LLMSettings, ModelSettings, UpstreamSettings
from ._surface import Surface, SurfaceContext, SurfaceEncoder, WireEvent
from ._surface_registry import SURFACES, surface_named
from ._types import (
    Cancelled,
    ChatRequest,
    Chunk,
    Failed,
    Finished,
    GenEvent,
    Started,
    Timings,
    Token,
    Usage,
)

if TYPE_CHECKING:
    from ._local import LocalProvider

__all__ = [
    "DEMO_DESCRIPTION",
    "DONE",
    "SURFACES",
    "Cancelled",
    "ChatChunkEncoder",
    "ChatCompletionCollector",
    "ChatRequest",
    "Chunk",
    "DemoProvider",
    "Failed",
    "Finished",
    "Gateway",
    "GenEvent",
    "Generation",
    "GenerationCancelled",
    "GenerationLost",
    "GenerationState",
    "InvalidLLMRequest",
    "LLMError",
    "LLMMetrics",
    "LLMService",
    "LLMSettings",
    "LocalProvider",
    "ModelEntry",
    "ModelNotFound",
    "ModelRegistry",
    "ModelSettings",
    "NativeEncoder",
    "OpenAIProvider",
    "PreparedStream",
    "Provider",
    "ResponseSnapshot",
    "ResponsesEncoder",
    "RetryPolicy",
    "Started",
    "Surface",
    "SurfaceContext",
    "SurfaceEncoder",
    "Timings",
    "Token",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamSettings",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "Usage",
    "WireEvent",
    "demo_answer",
    "error_payload",
    "error_status",
    "parse_retry_after",
    "responses_input_to_messages",
    "retryable_status",
    "surface_events",
    "surface_named",
]


def __getattr__(name: str) -> Any:
    if name == "LocalProvider":
        from ._local import LocalProvider

        return LocalProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
