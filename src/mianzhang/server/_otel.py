"""Optional OpenTelemetry tracing (extra ``otel``), through FastAPI's native telemetry.

Off by default: FastAPI's own request spans, metrics and logs are then switched off too. With
``MIANZHANG_OTEL_TRACING=true`` every request becomes a span exported over OTLP/HTTP (endpoint
and headers from the standard ``OTEL_EXPORTER_OTLP_*`` variables); an application may instead
pass its own ``TracerProvider`` to :func:`~mianzhang.server.create_app`.
"""

from __future__ import annotations

from typing import Any

from .._errors import ConfigError

__all__ = ["otlp_tracer_provider", "telemetry_config"]

_OFF = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def otlp_tracer_provider() -> Any:
    """An SDK tracer provider batching spans to the OTLP/HTTP exporter (owned by the caller:
    shut it down at the end of the app's lifespan)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            "MIANZHANG_OTEL_TRACING needs the otel extra: pip install 'mianzhang[otel]'"
        ) from exc
    provider = TracerProvider(resource=Resource.create({"service.name": "mianzhang"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def telemetry_config(tracer_provider: Any | None) -> dict[str, Any]:
    """FastAPI's ``telemetry=`` argument: request spans on ``tracer_provider``, or all off."""
    if tracer_provider is None:
        return dict(_OFF)
    return {
        "tracer_provider": tracer_provider,
        "tracing": True,
        "operation_spans": False,
        "metrics": False,  # Prometheus /metrics is the metrics interface
        "logs": False,  # logs go through the JSON/text logging of the server
    }
