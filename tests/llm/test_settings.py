"""Model settings (environment, config file): defaults, and validation at start, each problem
reported at its place (named as its ``MIANZHANG_LLM__...`` variable by ``load_settings``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mianzhang import ConfigError
from mianzhang.llm import LLMSettings
from mianzhang.llm._settings import setting_name
from mianzhang.server import load_settings

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
"""


def problems(spec: dict[str, Any]) -> dict[tuple[str | int, ...], str]:
    """The problems of ``spec`` (with a ``demo`` model added) by place."""
    models = {"demo": {"provider": "demo"}, **spec.pop("models", {})}
    with pytest.raises(ValidationError) as info:
        LLMSettings.model_validate({"models": models, **spec})
    return {tuple(e["loc"]): e["msg"] for e in info.value.errors()}


def test_defaults_offer_the_demo_and_the_scripted_model() -> None:
    settings = LLMSettings()
    assert settings.default_model == "demo"
    assert {name: m.provider for name, m in settings.models.items()} == {
        "demo": "demo",
        "scripted": "scripted",
    }
    assert settings.max_retries == 2


def test_upstream_defaults() -> None:
    up = LLMSettings(upstreams={"a": {}}).upstreams["a"]  # type: ignore[dict-item]
    assert up.base_url is None and up.anthropic_version == "2023-06-01"
    assert up.default_max_tokens == 4096 and up.include_usage


def test_config_file_adds_models_on_top(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(TOML)
    settings = LLMSettings(config_file=path)
    assert settings.default_model == "gpt"
    assert set(settings.models) == {"demo", "scripted", "gpt"}
    assert settings.models["gpt"].upstream_model == "gpt-4o-mini"


def test_json_config_file(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": {"fast": {"provider": "demo", "ttft": 0}}}))
    assert LLMSettings(config_file=path).models["fast"].ttft == 0


@pytest.mark.parametrize(
    ("spec", "place", "message"),
    [
        ({"default_model": "nope"}, ("default_model",), "'nope' is not a model"),
        ({"models": {"x": {"provider": "openai"}}}, ("models", "x", "upstream"), "required"),
        (
            {"models": {"x": {"provider": "anthropic"}}},
            ("models", "x", "upstream"),
            "required for the anthropic provider: the name of one of MIANZHANG_LLM__UPSTREAMS",
        ),
        (
            {"models": {"x": {"provider": "openai", "upstream": "missing"}}},
            ("models", "x", "upstream"),
            "'missing' must name one of MIANZHANG_LLM__UPSTREAMS (configured: none)",
        ),
        (
            {"models": {"x": {"provider": "openai", "upstream": "u"}}, "upstreams": {"u": {}}},
            ("models", "x", "upstream"),
            "needs MIANZHANG_LLM__UPSTREAMS__U__BASE_URL",
        ),
        ({"models": {"x": {"provider": "local"}}}, ("models", "x", "path"), "required"),
        (
            {"models": {"x": {"provider": "demo", "scripts_dir": "."}}},
            ("models", "x", "scripts_dir"),
            "only the scripted provider",
        ),
        (
            {"models": {"x": {"provider": "scripted", "scripts_dir": "/no/such/dir"}}},
            ("models", "x", "scripts_dir"),
            "'/no/such/dir' is not a directory",
        ),
        (
            {"models": {"x": {"provider": "demo", "fallbacks": ["y"]}}},
            ("models", "x", "fallbacks"),
            "'y' is not a configured model",
        ),
        (
            {"models": {"x": {"provider": "demo", "fallbacks": ["x"]}}},
            ("models", "x", "fallbacks"),
            "itself",
        ),
        ({"models": {"x": {"provider": "nope"}}}, ("models", "x", "provider"), "Input should be"),
        ({"models": {"x": {"provider": "demo", "unknown": 1}}}, ("models", "x", "unknown"), ""),
        (
            {"upstreams": {"u": {"default_max_tokens": 0}}},
            ("upstreams", "u", "default_max_tokens"),
            "greater than or equal to 1",
        ),
        (
            {"retry_initial_delay": 9, "retry_max_delay": 1},
            ("retry_initial_delay",),
            "must be <= MIANZHANG_LLM__RETRY_MAX_DELAY",
        ),
    ],
)
def test_each_problem_is_reported_at_its_place(
    spec: dict[str, Any], place: tuple[str, ...], message: str
) -> None:
    found = problems(spec)
    assert place in found, found
    assert message in found[place]


def test_stored_scripts_are_read_and_checked(tmp_path: Path) -> None:
    (tmp_path / "weather.json").write_text(json.dumps([{"words": "Sunny."}]))
    fine = {"provider": "scripted", "scripts_dir": str(tmp_path), "upstream_model": "weather"}
    builtin = {"provider": "scripted", "upstream_model": "tool-call"}
    LLMSettings.model_validate({"models": {"demo": {"provider": "demo"}, "a": fine, "b": builtin}})
    found = problems({"models": {"s": {**fine, "upstream_model": "nope"}}})
    message = found[("models", "s", "upstream_model")]
    assert message.startswith("no stored script 'nope' (known: ")
    assert "weather" in message and "tool-call" in message  # the known ones are listed
    (tmp_path / "broken.json").write_text(json.dumps([{"tool_call": {}}]))
    found = problems({"models": {"s": fine}})
    message = found[("models", "s", "scripts_dir")]
    assert "'broken'" in message and "script[0].tool_call.name: Field required" in message
    (tmp_path / "broken.json").write_text("{not json")
    assert "broken.json" in problems({"models": {"s": fine}})[("models", "s", "scripts_dir")]


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        {
            "default_model": "nope",
            "models": {"a": {"provider": "local"}, "b": {"provider": "anthropic"}},
        }
    )
    assert set(found) == {("default_model",), ("models", "a", "path"), ("models", "b", "upstream")}


def test_load_settings_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    models = {"demo": {"provider": "demo"}, "claude": {"provider": "anthropic", "upstream": "a"}}
    monkeypatch.setenv("MIANZHANG_LLM__MODELS", json.dumps(models))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "MIANZHANG_LLM__MODELS__CLAUDE__UPSTREAM: 'a' must name one of" in str(info.value)


def test_setting_name() -> None:
    assert setting_name("models", "gpt-4o", "scripts_dir") == (
        "MIANZHANG_LLM__MODELS__GPT-4O__SCRIPTS_DIR"
    )


def test_problems_of_file_entries_say_the_file(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[models.y]\nprovider = "demo"\nttft = -1\n')
    found = problems({"config_file": str(path)})
    assert found == {
        ("models", "y", "ttft"): f"Input should be greater than or equal to 0 (set in {path})"
    }
    path.write_text('[models.x]\nprovider = "local"\n')
    found = problems({"config_file": str(path)})
    assert found[("models", "x", "path")].endswith(f"(set in {path})")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("surprise = 1\n", "unknown keys ['surprise']"),
        ("models = 3\n", "models must be a table/object of entries"),
        ("not toml [", "Expected"),
    ],
)
def test_a_bad_config_file_is_rejected(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    found = problems({"config_file": str(path)})
    assert message in found[("config_file",)]


def test_a_missing_config_file_is_rejected(tmp_path: Path) -> None:
    found = problems({"config_file": str(tmp_path / "missing.toml")})
    assert "missing.toml" in found[("config_file",)]
