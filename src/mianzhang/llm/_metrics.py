"""Prometheus metrics of the gateway, named after the OpenTelemetry GenAI conventions.

OpenTelemetry names become Prometheus names the way the OTel Prometheus exporter writes them
(dots to underscores, unit appended): ``gen_ai.server.time_to_first_token`` ->
``gen_ai_server_time_to_first_token_seconds``, ``gen_ai.client.token.usage`` ->
``gen_ai_client_token_usage`` with label ``gen_ai_token_type`` (``input``/``output``). Bucket
boundaries are the ones the conventions advise. Gateway-specific counters use the
``mianzhang_llm_`` prefix.

Metrics live in a :class:`~prometheus_client.CollectorRegistry` the caller owns (the app's),
never the process-global default registry, so two apps in one process do not collide.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LLMMetrics"]

_LABELS = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")

# fmt: off
_TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
_TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)
_TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1, 4, 16, ... 4**13 = 67108864
# fmt: on


@dataclass(frozen=True, slots=True)
class _Spec:
    """One instrument: its name (without unit), help text, labels, unit and buckets."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    unit: str = ""
    buckets: tuple[float, ...] = ()


def _histogram(spec: _Spec, registry: CollectorRegistry) -> Histogram:
    return Histogram(
        spec.name,
        spec.documentation,
        spec.labels,
        unit=spec.unit,
        buckets=spec.buckets,
        registry=registry,
    )


def _counter(spec: _Spec, registry: CollectorRegistry) -> Counter:
    return Counter(spec.name, spec.documentation, spec.labels, unit=spec.unit, registry=registry)


def _gauge(spec: _Spec, registry: CollectorRegistry) -> Gauge:
    return Gauge(spec.name, spec.documentation, spec.labels, unit=spec.unit, registry=registry)


# fmt: off
# OpenTelemetry GenAI histograms (name, help, labels, unit, buckets)
_TIME_TO_FIRST_TOKEN = _Spec(
    "gen_ai_server_time_to_first_token",
    "Time to generate the first token (gateway: request accepted -> first token sent on).",
    _LABELS, "seconds", _TTFT_BUCKETS,
)
_TIME_PER_OUTPUT_TOKEN = _Spec(
    "gen_ai_server_time_per_output_token",
    "Time per output token after the first one (mean inter-token latency of a generation).",
    _LABELS, "seconds", _TPOT_BUCKETS,
)
_TOKEN_USAGE = _Spec(
    "gen_ai_client_token_usage",
    "Number of input and output tokens used per generation (also when cut short).",
    (*_LABELS, "gen_ai_token_type"), "", _TOKEN_BUCKETS,
)
_OPERATION_DURATION = _Spec(
    "gen_ai_client_operation_duration",
    "Duration of a whole generation, including retries and fallbacks.",
    (*_LABELS, "error_type"), "seconds", _DURATION_BUCKETS,
)
# the gateway's own gauge and counters (name, help, labels)
_ACTIVE = _Spec(
    "mianzhang_llm_active_generations", "Generations currently running.",
    ("gen_ai_request_model",),
)
_CANCELLATIONS = _Spec(
    "mianzhang_llm_cancellations",
    "Generations cancelled before their end (by a stop, abandonment or shutdown).",
    ("gen_ai_request_model", "reason"),
)
_UPSTREAM_ERRORS = _Spec(
    "mianzhang_llm_upstream_errors", "Failed upstream attempts (each retry counts).",
    ("gen_ai_provider_name", "gen_ai_request_model", "error_type"),
)
_RETRIES = _Spec(
    "mianzhang_llm_retries", "Upstream requests sent again before the first token.",
    ("gen_ai_provider_name", "gen_ai_request_model"),
)
_FALLBACKS = _Spec(
    "mianzhang_llm_fallbacks", "Generations moved on to a fallback model.",
    ("gen_ai_request_model", "fallback"),
)
# fmt: on


class LLMMetrics:
    """The gateway's instruments, registered in ``registry``.

    * ``gen_ai_server_time_to_first_token_seconds`` (histogram): request accepted -> first
      output token, per successful first token.
    * ``gen_ai_server_time_per_output_token_seconds`` (histogram): mean inter-token latency
      of a generation after its first token.
    * ``gen_ai_client_token_usage`` (histogram, ``gen_ai_token_type``): tokens per generation,
      also for generations cut short (cancelled or failed).
    * ``gen_ai_client_operation_duration_seconds`` (histogram, ``error_type``): whole generation.
    * ``mianzhang_llm_active_generations`` (gauge), ``mianzhang_llm_cancellations_total``
      (``reason``), ``mianzhang_llm_upstream_errors_total`` (``error_type``),
      ``mianzhang_llm_retries_total``, ``mianzhang_llm_fallbacks_total``.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.time_to_first_token = _histogram(_TIME_TO_FIRST_TOKEN, registry)
        self.time_per_output_token = _histogram(_TIME_PER_OUTPUT_TOKEN, registry)
        self.token_usage = _histogram(_TOKEN_USAGE, registry)
        self.operation_duration = _histogram(_OPERATION_DURATION, registry)
        self.active = _gauge(_ACTIVE, registry)
        self.cancellations = _counter(_CANCELLATIONS, registry)
        self.upstream_errors = _counter(_UPSTREAM_ERRORS, registry)
        self.retries = _counter(_RETRIES, registry)
        self.fallbacks = _counter(_FALLBACKS, registry)
