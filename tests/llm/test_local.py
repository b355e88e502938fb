"""The local transformers provider, on a tiny random GPT-2 the test builds (no download)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mianzhang.llm import ChatRequest, LocalProvider, UpstreamError

from ._tiny_model import build_tiny_gpt2, reference


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


def request(max_tokens: int | None = None) -> ChatRequest:
    return ChatRequest(
        messages=[{"role": "user", "content": "hello tiny model"}],
        max_tokens=max_tokens,
        params={"temperature": 0},
    )


async def test_streams_the_same_text_as_generate_with_exact_usage(model_dir: Path) -> None:
    provider = LocalProvider(model_dir, max_new_tokens=64)
    try:
        chunks = [c async for c in provider.stream("tiny", request(max_tokens=12))]
    finally:
        await provider.aclose()
    text, prompt_len, generated = reference(model_dir, "hello tiny model", 12)
    assert "".join(c.text for c in chunks).strip() == text.strip()
    assert sum(1 for c in chunks if c.text) >= 2  # streamed in pieces, not at the end
    final = chunks[-1]
    assert final.usage is not None
    assert final.usage.prompt_tokens == prompt_len and final.usage.completion_tokens == generated
    assert final.finish_reason == ("length" if generated == 12 else "stop")


async def test_closing_the_iterator_stops_the_worker_thread(model_dir: Path) -> None:
    provider = LocalProvider(model_dir, max_new_tokens=1_000_000)
    try:
        it = provider.stream("tiny", ChatRequest(messages=[{"role": "user", "content": "hi"}]))
        first = await asyncio.wait_for(anext(it), 60)
        assert first.text
        # generation would run for ages; closing must stop it and wait for the thread
        await asyncio.wait_for(it.aclose(), 30)  # type: ignore[attr-defined]
        # the single slot is free again: a new generation starts and finishes
        again = [c async for c in provider.stream("tiny", request(max_tokens=3))]
        assert again[-1].finish_reason is not None
    finally:
        await provider.aclose()


async def test_missing_model_directory_is_an_upstream_error(tmp_path: Path) -> None:
    provider = LocalProvider(tmp_path / "nothing-here")
    with pytest.raises(UpstreamError, match="cannot load local model"):
        [c async for c in provider.stream("x", request())]


async def test_local_model_configured_by_name_streams_through_the_gateway(model_dir: Path) -> None:
    from mianzhang.llm import Finished, Gateway, LLMSettings, ModelRegistry, Token

    settings = LLMSettings.model_validate(
        {
            "models": {"tiny": {"provider": "local", "path": str(model_dir), "max_new_tokens": 6}},
            "default_model": "tiny",
        }
    )
    registry = ModelRegistry.from_settings(settings)
    try:
        assert registry.get("tiny").kind == "local"
        gen = Gateway(registry).start(None, request())
        events = [e async for e in gen.events()]
    finally:
        await registry.aclose()
    assert any(isinstance(e, Token) and e.chunk.text for e in events)
    final = events[-1]
    assert isinstance(final, Finished) and final.provider == "local" and final.usage_reported
