"""Providers configured by settings alone, end to end: a real mianzhang server (uvicorn) whose
``anthropic`` models stream from a fake Messages API upstream (a second uvicorn process) and
whose ``scripted`` models play scripts from a directory, read with the official openai SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from tests._support.procs import ServerProcess, uvicorn_process

from ._llm import APP

pytestmark = pytest.mark.e2e

ANTHROPIC_KEY = "sk-ant-e2e-secret"
WEATHER = [
    {"reasoning": "The user wants the weather."},
    {"words": "Let me check."},
    {"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}, "chunks": 3}},
]


@pytest.fixture(scope="module")
def anthropic_upstream() -> Iterator[ServerProcess]:
    with uvicorn_process("tests.e2e.apps.fake_anthropic:app") as proc:
        yield proc


@pytest.fixture(scope="module")
def gateway(
    anthropic_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    scripts: Path = tmp_path_factory.mktemp("scripts")
    (scripts / "weather.json").write_text(json.dumps(WEATHER))
    models = {
        "demo": {"provider": "demo", "ttft": 0, "token_delay": 0, "tokens": 5},
        "claude": {"provider": "anthropic", "upstream": "fake", "upstream_model": "text"},
        "claude-tools": {"provider": "anthropic", "upstream": "fake", "upstream_model": "tool_use"},
        "weather": {"provider": "scripted", "scripts_dir": str(scripts)},
    }
    upstreams = {
        "fake": {
            "base_url": f"{anthropic_upstream.url}/v1",
            "api_key_env": "FAKE_ANTHROPIC_KEY",
            "default_max_tokens": 321,
        }
    }
    env = {
        "FAKE_ANTHROPIC_KEY": ANTHROPIC_KEY,
        "MIANZHANG_LLM__MODELS": json.dumps(models),
        "MIANZHANG_LLM__UPSTREAMS": json.dumps(upstreams),
        "MIANZHANG_FILES__ENABLED": "false",
    }
    with uvicorn_process(APP, factory=True, env=env) as proc:
        yield proc


async def stream(gateway: ServerProcess, model: str) -> list[Any]:
    client = AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    try:
        chunks = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        return [chunk async for chunk in chunks]
    finally:
        await client.close()


def content(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def finish_reasons(chunks: list[Any]) -> list[str]:
    return [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


def tool_calls(chunks: list[Any]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(delta.index, {"name": "", "arguments": ""})
            call["name"] += delta.function.name or ""
            call["arguments"] += delta.function.arguments or ""
    return calls


def test_models_lists_every_configured_provider(gateway: ServerProcess) -> None:
    models = httpx.get(f"{gateway.url}/v1/models").json()["data"]
    assert {m["id"]: m["owned_by"] for m in models} == {
        "demo": "mianzhang-demo",
        "claude": "mianzhang-anthropic",
        "claude-tools": "mianzhang-anthropic",
        "weather": "mianzhang-scripted",
    }


async def test_an_anthropic_model_streams_with_the_upstream_settings(
    gateway: ServerProcess, anthropic_upstream: ServerProcess
) -> None:
    chunks = await stream(gateway, "claude")
    assert content(chunks) == "Hello, world!"
    assert finish_reasons(chunks) == ["stop"]
    recorded = httpx.get(f"{anthropic_upstream.url}/_requests").json()["requests"]
    sent = [r for r in recorded if r["body"]["model"] == "text"][-1]
    assert sent["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["body"]["max_tokens"] == 321  # the upstream's default_max_tokens


async def test_an_anthropic_tool_use_reaches_the_openai_client(gateway: ServerProcess) -> None:
    chunks = await stream(gateway, "claude-tools")
    calls = tool_calls(chunks)
    assert calls and all(json.loads(c["arguments"]) is not None for c in calls.values())
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["tool_calls"]


async def test_a_scripted_model_plays_the_script_named_like_it(gateway: ServerProcess) -> None:
    chunks = await stream(gateway, "weather")
    assert content(chunks) == "Let me check."
    assert tool_calls(chunks) == {0: {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    assert finish_reasons(chunks) == ["tool_calls"]
