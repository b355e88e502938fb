"""OpenTelemetry (extra ``otel``): request spans through FastAPI's native telemetry, off by
default."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mianzhang.server import Settings, create_app
from tests._support.procs import free_port


def test_requests_become_spans_on_the_given_provider() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(files={"enabled": False})  # type: ignore[arg-type]
    with TestClient(create_app(settings, tracer_provider=provider)) as client:
        assert client.get("/v1/models").status_code == 200
    spans = exporter.get_finished_spans()
    assert any("/v1/models" in span.name for span in spans), [s.name for s in spans]
    provider.shutdown()


def test_otel_tracing_builds_an_otlp_provider_owned_by_the_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{free_port()}/")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    settings = Settings(files={"enabled": False}, otel_tracing=True)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:  # no collector: spans are just dropped
        assert client.get("/healthz").status_code == 200
