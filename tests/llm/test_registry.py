"""The registry built from settings: one provider per upstream and API, a builder per provider
kind (demo, scripted, openai, anthropic, local), errors naming the setting; lookup and
closing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mianzhang import ConfigError
from mianzhang.llm import (
    ChatRequest,
    Chunk,
    DemoProvider,
    LLMSettings,
    ModelEntry,
    ModelNotFound,
    ModelRegistry,
    OpenAIProvider,
)
from mianzhang.llm._anthropic import AnthropicProvider
from mianzhang.llm._scripted import SCRIPTED_DESCRIPTION, ScriptedProvider

from ._anthropic_fixtures import sse, text

HI = ChatRequest([{"role": "user", "content": "hi"}])


def settings(models: dict[str, Any], upstreams: dict[str, Any] | None = None) -> LLMSettings:
    return LLMSettings.model_validate(
        {"models": {"demo": {"provider": "demo"}, **models}, "upstreams": upstreams or {}}
    )


async def play(registry: ModelRegistry, name: str, request: ChatRequest = HI) -> list[Chunk]:
    entry = registry.get(name)
    return [c async for c in entry.provider.stream(entry.upstream_model, request)]


def answer(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks)


async def test_the_default_registry_has_the_demo_and_the_scripted_model() -> None:
    registry = ModelRegistry.from_settings(LLMSettings(), environ={})
    try:
        assert [e.name for e in registry.models()] == ["demo", "scripted"]
        demo, scripted = (e.to_openai() for e in registry.models())
        assert demo["owned_by"] == "mianzhang-demo" and "not an LLM" in str(demo["description"])
        assert scripted["owned_by"] == "mianzhang-scripted"
        assert scripted["description"] == SCRIPTED_DESCRIPTION
        assert answer(await play(registry, "scripted")) == 'turn 1: you said "hi"'
    finally:
        await registry.aclose()


async def test_openai_models_of_one_upstream_share_one_provider(tmp_path: Path) -> None:
    upstreams = {"main": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "KEY"}}
    models = {
        "gpt": {"provider": "openai", "upstream": "main", "upstream_model": "gpt-4o-mini"},
        "gpt2": {"provider": "openai", "upstream": "main", "fallbacks": ["demo"]},
    }
    registry = ModelRegistry.from_settings(settings(models, upstreams), environ={"KEY": "sk-1"})
    try:
        gpt, gpt2 = registry.get("gpt"), registry.get("gpt2")
        assert isinstance(gpt.provider, OpenAIProvider) and gpt.provider is gpt2.provider
        assert gpt.upstream_model == "gpt-4o-mini" and gpt2.upstream_model == "gpt2"
        assert gpt.to_openai()["description"] == "gpt-4o-mini via main"
        assert [e.name for e in registry.chain("gpt2")] == ["gpt2", "demo"]
    finally:
        await registry.aclose()


async def test_an_anthropic_model_speaks_the_messages_api_with_its_upstream_settings() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = sse(text("Hello", ", world", "!"))
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    upstreams = {
        "anthropic": {
            "api_key_env": "ANTHROPIC_KEY",
            "anthropic_version": "2099-01-01",
            "default_max_tokens": 77,
        }
    }
    models = {"claude": {"provider": "anthropic", "upstream": "anthropic", "upstream_model": "c-1"}}
    registry = ModelRegistry.from_settings(
        settings(models, upstreams),
        environ={"ANTHROPIC_KEY": "sk-ant-1"},
        transport_factory=lambda name: httpx.MockTransport(handler),
    )
    try:
        entry = registry.get("claude")
        assert isinstance(entry.provider, AnthropicProvider) and entry.kind == "anthropic"
        assert entry.provider.base_url == "https://api.anthropic.com/v1"  # the default
        assert answer(await play(registry, "claude")) == "Hello, world!"
    finally:
        await registry.aclose()
    [request] = seen
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-1"
    assert request.headers["anthropic-version"] == "2099-01-01"
    body = orjson.loads(request.content)
    assert body["model"] == "c-1" and body["max_tokens"] == 77


async def test_one_upstream_serves_both_apis_with_a_provider_each() -> None:
    closed: list[str] = []
    upstreams = {"proxy": {"base_url": "http://127.0.0.1:9/v1"}}
    models = {
        "a1": {"provider": "anthropic", "upstream": "proxy"},
        "a2": {"provider": "anthropic", "upstream": "proxy"},
        "o1": {"provider": "openai", "upstream": "proxy"},
    }
    registry = ModelRegistry.from_settings(settings(models, upstreams), environ={})
    a1, a2, o1 = (registry.get(n).provider for n in ("a1", "a2", "o1"))
    assert a1 is a2 and isinstance(a1, AnthropicProvider) and isinstance(o1, OpenAIProvider)
    assert a1.base_url == o1.base_url == "http://127.0.0.1:9/v1"
    for provider in (a1, o1):
        original = provider.aclose

        async def counting(original: Any = original, kind: str = provider.kind) -> None:
            closed.append(kind)
            await original()

        provider.aclose = counting  # type: ignore[method-assign]
    await registry.aclose()
    assert sorted(closed) == ["anthropic", "openai"]  # each once


def test_an_unset_api_key_variable_names_the_setting() -> None:
    upstreams = {"main": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "NOT_SET_KEY"}}
    with pytest.raises(ConfigError) as info:
        ModelRegistry.from_settings(settings({}, upstreams), environ={})
    assert str(info.value) == (
        "MIANZHANG_LLM__UPSTREAMS__MAIN__API_KEY_ENV: $NOT_SET_KEY is not set"
    )


WEATHER = {
    "script": [
        {"words": "Checking."},
        {"tool_call": {"name": "weather", "arguments": {"city": "Paris"}, "chunks": 2}},
    ]
}


async def test_scripted_models_play_the_stored_script_their_upstream_name_selects(
    tmp_path: Path,
) -> None:
    (tmp_path / "weather.json").write_text(json.dumps(WEATHER))
    models = {
        "weather": {"provider": "scripted", "scripts_dir": str(tmp_path)},
        "forecast": {
            "provider": "scripted",
            "scripts_dir": str(tmp_path),
            "upstream_model": "weather",
        },
        "echo": {"provider": "scripted", "scripts_dir": str(tmp_path)},
        "tools": {"provider": "scripted", "upstream_model": "tool-call"},  # a built-in
    }
    registry = ModelRegistry.from_settings(settings(models), environ={})
    try:
        for name in ("weather", "forecast"):
            chunks = await play(registry, name)
            assert answer(chunks) == "Checking."
            calls = [call for c in chunks for call in c.tool_calls or ()]
            assert calls[0]["function"]["name"] == "weather" and len(calls) == 3
            assert chunks[-1].finish_reason == "tool_calls"
        assert answer(await play(registry, "echo")) == 'turn 1: you said "hi"'
        by_name = ChatRequest([{"role": "user", "content": '{"script": "weather"}'}])
        assert answer(await play(registry, "echo", by_name)) == "Checking."
        tools = await play(registry, "tools")
        assert any(c.tool_calls for c in tools)
        assert isinstance(registry.get("echo").provider, ScriptedProvider)
        assert registry.get("echo").provider is not registry.get("weather").provider
    finally:
        await registry.aclose()


def test_a_stored_script_broken_after_validation_names_the_directory_setting(
    tmp_path: Path,
) -> None:
    (tmp_path / "fine.json").write_text(json.dumps([{"words": "ok"}]))
    models = {"s": {"provider": "scripted", "scripts_dir": str(tmp_path)}}
    validated = settings(models)
    (tmp_path / "fine.json").write_text(json.dumps([{"tool_call": {}}]))
    with pytest.raises(ConfigError) as info:
        ModelRegistry.from_settings(validated, environ={})
    message = str(info.value)
    assert message.startswith("MIANZHANG_LLM__MODELS__S__SCRIPTS_DIR: ")
    assert "'fine'" in message and "script[0].tool_call.name" in message


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
