"""Model settings (env / config file), validation at start, and the registry built from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from mianzhang.llm import (
    DemoProvider,
    LLMSettings,
    ModelEntry,
    ModelNotFound,
    ModelRegistry,
    OpenAIProvider,
)

TOML = """
default_model = "gpt"

[upstreams.main]
base_url = "http://127.0.0.1:9/v1"
api_key_env = "TEST_UPSTREAM_KEY"

[models.gpt]
provider = "openai"
upstream = "main"
upstream_model = "gpt-4o-mini"
fallbacks = ["demo"]

[models.gpt2]
provider = "openai"
upstream = "main"
"""


def test_defaults_serve_the_demo_model() -> None:
    settings = LLMSettings()
    assert settings.default_model == "demo"
    assert settings.models["demo"].provider == "demo"
    assert settings.max_retries == 2


async def test_config_file_adds_models_and_shares_one_pool_per_upstream(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(TOML)
    settings = LLMSettings(config_file=path)
    assert settings.default_model == "gpt" and set(settings.models) == {"demo", "gpt", "gpt2"}
    registry = ModelRegistry.from_settings(settings, environ={"TEST_UPSTREAM_KEY": "sk-1"})
    try:
        gpt, gpt2 = registry.get("gpt"), registry.get("gpt2")
        assert isinstance(gpt.provider, OpenAIProvider) and gpt.provider is gpt2.provider
        assert gpt.upstream_model == "gpt-4o-mini" and gpt2.upstream_model == "gpt2"
        assert [e.name for e in registry.chain("gpt")] == ["gpt", "demo"]
        assert registry.default_model == "gpt"
        demo = registry.get("demo").to_openai()
        assert demo["owned_by"] == "mianzhang-demo" and "demo" in str(demo["description"])
    finally:
        await registry.aclose()


def test_json_config_file(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": {"fast": {"provider": "demo", "ttft": 0}}}))
    assert LLMSettings(config_file=path).models["fast"].ttft == 0


def test_missing_api_key_env_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(TOML)
    with pytest.raises(ValueError, match="TEST_UPSTREAM_KEY"):
        ModelRegistry.from_settings(LLMSettings(config_file=path), environ={})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"default_model": "nope"}, "default_model 'nope'"),
        ({"models": {"x": {"provider": "openai"}}}, "x.upstream must name"),
        ({"models": {"x": {"provider": "openai", "upstream": "missing"}}}, "x.upstream must"),
        ({"models": {"x": {"provider": "local"}}}, "x.path is required"),
        ({"models": {"x": {"provider": "demo", "fallbacks": ["y"]}}}, "'y' is not a configured"),
        ({"models": {"x": {"provider": "demo", "fallbacks": ["x"]}}}, "itself"),
        ({"models": {"x": {"provider": "nope"}}}, "provider"),
        ({"models": {"x": {"provider": "demo", "unknown": 1}}}, "unknown"),
        ({"retry_initial_delay": 9, "retry_max_delay": 1}, "retry_initial_delay"),
    ],
)
def test_invalid_settings_are_rejected_at_start(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        models = {"demo": {"provider": "demo"}, **spec.pop("models", {})}  # type: ignore[dict-item]
        LLMSettings.model_validate({"models": models, **spec})


def test_unreadable_or_unknown_config_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="config_file"):
        LLMSettings(config_file=tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("surprise = 1\n")
    with pytest.raises(ValidationError, match="unknown keys"):
        LLMSettings(config_file=bad)


async def test_registry_lookup_and_closing_each_provider_once() -> None:
    class Counting(DemoProvider):
        closes = 0

        async def aclose(self) -> None:
            Counting.closes += 1

    shared = Counting()
    registry = ModelRegistry(
        [ModelEntry("a", shared, "a", ("b",)), ModelEntry("b", shared, "b")], default_model="a"
    )
    with pytest.raises(ModelNotFound):
        registry.get("zzz")
    assert [e.name for e in registry.models()] == ["a", "b"]
    await registry.aclose()
    assert Counting.closes == 1


def test_registry_rejects_unknown_default_or_fallback() -> None:
    demo = DemoProvider()
    with pytest.raises(ValueError):
        ModelRegistry([ModelEntry("a", demo, "a")], default_model="b")
    with pytest.raises(ValueError):
        ModelRegistry([ModelEntry("a", demo, "a", ("b",))], default_model="a")
