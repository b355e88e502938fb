"""The ``local`` provider end to end: a tiny random GPT-2 the test builds and saves, configured
by name in a TOML config file, served by a real uvicorn process, streamed by the official
``openai`` SDK exactly as ``model.generate`` writes it; a stop ends the worker thread's
generation early."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from openai import AsyncOpenAI

from tests._support.procs import ServerProcess, uvicorn_process
from tests.llm._tiny_model import build_tiny_gpt2, reference

from ._llm import API_KEY, APP, gateway_env, sse_events

pytestmark = pytest.mark.e2e

PROMPT = "hello tiny model"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = tmp_path_factory.mktemp("config") / "models.toml"
    config.write_text(
        f"""
default_model = "tiny"

[models.tiny]
provider = "local"
path = "{model_dir}"
max_new_tokens = 64

[models.tiny-long]
provider = "local"
path = "{model_dir}"
max_new_tokens = 900
""",
        encoding="utf-8",
    )
    env = gateway_env("http://127.0.0.1:9", MIANZHANG_LLM__CONFIG_FILE=str(config))
    with uvicorn_process(APP, factory=True, env=env) as p:
        yield p


async def test_the_sdk_streams_what_generate_writes_with_exact_usage(
    server: ServerProcess, model_dir: Path
) -> None:
    client = AsyncOpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)
    try:
        models = {m.id: m for m in (await client.models.list()).data}
        stream = await client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            temperature=0,
            max_tokens=12,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    finally:
        await client.close()
    assert models["tiny"].owned_by == "mianzhang-local"
    text, prompt_tokens, generated = reference(model_dir, PROMPT, 12)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces).strip() == text.strip()
    assert sum(1 for p in pieces if p) >= 2  # streamed in pieces, not at the end
    [usage_chunk] = [c for c in chunks if c.usage is not None]
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.prompt_tokens == prompt_tokens  # the model's own tokenizer
    assert usage_chunk.usage.completion_tokens == generated


def test_a_stop_ends_the_local_generation_early(server: ServerProcess) -> None:
    # greedy: a randomly initialised model that samples may draw its end token first
    body = {
        "model": "tiny-long",
        "messages": [{"role": "user", "content": PROMPT}],
        "temperature": 0,
    }
    created = httpx.post(f"{server.url}/v1/llm/generations", json=body, timeout=30)
    assert created.status_code == 201
    stream_id = created.json()["stream_id"]
    events: list[Any] = []
    stopped = False
    with httpx.stream("GET", f"{server.url}/v1/streams/{stream_id}", timeout=60) as r:
        for event in sse_events(r):
            events.append(event)
            if event.event == "content" and not stopped:
                stopped = True
                stop = httpx.post(f"{server.url}/v1/streams/{stream_id}/cancel", timeout=30)
                assert stop.status_code == 200
    assert events[-1].event == "error"
    final = orjson.loads(events[-1].data)
    assert final["error"]["code"] == "cancelled"
    contents = sum(e.event == "content" for e in events)
    assert 1 <= contents < 900
    assert final["usage"]["completion_tokens"] == contents  # usage of a stream cut short
