"""The metrics one generation records (OpenTelemetry GenAI names, ``_metrics.py``).

:class:`GenerationMetrics` is the gateway's only contact with the instruments: it does
nothing when the gateway has none. Every generation counts once in ``active`` while it runs
and records its usage, duration and outcome when it ends, including failures and
cancellations (``cancelled`` with the cancel reason).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import UpstreamProtocolError, UpstreamStatusError, UpstreamTimeout
from ._metrics import LLMMetrics
from ._registry import ModelEntry

if TYPE_CHECKING:
    from ._gateway import Generation

__all__ = ["GenerationMetrics", "error_type"]


def error_type(exc: BaseException) -> str:
    """The ``error.type`` label of a failure."""
    if isinstance(exc, UpstreamStatusError):
        return str(exc.status_code)
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamProtocolError):
        return "protocol"
    return type(exc).__name__


class GenerationMetrics:
    """The instruments as one generation of ``model`` uses them (``None``: no metrics)."""

    __slots__ = ("_metrics", "_model")

    def __init__(self, metrics: LLMMetrics | None, model: str) -> None:
        self._metrics = metrics
        self._model = model

    def _labels(self, entry: ModelEntry) -> tuple[str, str, str]:
        return ("chat", entry.kind, self._model)

    def started(self) -> None:
        if self._metrics is not None:
            self._metrics.active.labels(self._model).inc()

    def fallback(self, entry: ModelEntry) -> None:
        if self._metrics is not None:
            self._metrics.fallbacks.labels(self._model, entry.name).inc()

    def retry(self, entry: ModelEntry) -> None:
        if self._metrics is not None:
            self._metrics.retries.labels(entry.kind, self._model).inc()

    def first_token(self, entry: ModelEntry, seconds: float) -> None:
        if self._metrics is not None:
            self._metrics.time_to_first_token.labels(*self._labels(entry)).observe(seconds)

    def upstream_error(self, entry: ModelEntry, exc: BaseException) -> None:
        if self._metrics is not None:
            self._metrics.upstream_errors.labels(entry.kind, self._model, error_type(exc)).inc()

    def ended(self, generation: Generation, error_label: str) -> None:
        """The generation ended (``error_label``: ``""``, ``cancelled`` or an error type)."""
        metrics = self._metrics
        if metrics is None:
            return
        labels = self._labels(generation.entry)
        usage = generation.usage
        timings = generation.timings()
        metrics.active.labels(self._model).dec()
        metrics.token_usage.labels(*labels, "input").observe(usage.prompt_tokens)
        metrics.token_usage.labels(*labels, "output").observe(usage.completion_tokens)
        metrics.operation_duration.labels(*labels, error_label).observe(timings.duration)
        if generation.state == "cancelled":
            metrics.cancellations.labels(self._model, generation.cancel_reason).inc()
        output = generation.output_tokens
        if timings.time_to_first_token is not None and output >= 2:
            span = timings.duration - timings.time_to_first_token
            metrics.time_per_output_token.labels(*labels).observe(span / (output - 1))
