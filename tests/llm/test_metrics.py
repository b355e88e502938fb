"""The gateway's instruments: names (OpenTelemetry GenAI conventions as the OTel Prometheus
exporter writes them), types, labels and buckets, registered in the caller's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from mianzhang.llm._metrics import LLMMetrics

GEN_AI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")


def test_instrument_names_types_and_labels() -> None:
    registry = CollectorRegistry()
    metrics = LLMMetrics(registry)
    assert metrics.registry is registry
    families = {m.name: m.type for m in registry.collect()}
    assert families == {
        "gen_ai_server_time_to_first_token_seconds": "histogram",
        "gen_ai_server_time_per_output_token_seconds": "histogram",
        "gen_ai_client_token_usage": "histogram",
        "gen_ai_client_operation_duration_seconds": "histogram",
        "mianzhang_llm_active_generations": "gauge",
        "mianzhang_llm_cancellations": "counter",
        "mianzhang_llm_upstream_errors": "counter",
        "mianzhang_llm_retries": "counter",
        "mianzhang_llm_fallbacks": "counter",
    }
    assert metrics.token_usage._labelnames == (*GEN_AI, "gen_ai_token_type")
    assert metrics.operation_duration._labelnames == (*GEN_AI, "error_type")
    assert metrics.upstream_errors._labelnames == (
        "gen_ai_provider_name",
        "gen_ai_request_model",
        "error_type",
    )
    assert metrics.fallbacks._labelnames == ("gen_ai_request_model", "fallback")


def test_observations_land_in_the_advised_buckets() -> None:
    registry = CollectorRegistry()
    metrics = LLMMetrics(registry)
    metrics.time_to_first_token.labels("chat", "demo", "demo").observe(0.03)
    metrics.token_usage.labels("chat", "demo", "demo", "output").observe(5)
    metrics.retries.labels("openai", "gpt").inc()
    labels = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "demo",
        "gen_ai_request_model": "demo",
    }
    ttft = "gen_ai_server_time_to_first_token_seconds_bucket"
    assert registry.get_sample_value(ttft, {**labels, "le": "0.02"}) == 0
    assert registry.get_sample_value(ttft, {**labels, "le": "0.04"}) == 1
    usage = "gen_ai_client_token_usage_bucket"
    output = {**labels, "gen_ai_token_type": "output"}
    assert registry.get_sample_value(usage, {**output, "le": "4.0"}) == 0
    assert registry.get_sample_value(usage, {**output, "le": "16.0"}) == 1
    retries = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt"}
    assert registry.get_sample_value("mianzhang_llm_retries_total", retries) == 1


def test_two_apps_in_one_process_do_not_collide() -> None:
    LLMMetrics(CollectorRegistry())
    LLMMetrics(CollectorRegistry())  # a second registration elsewhere raises nothing
