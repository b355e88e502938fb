"""One generation, three shapes: an answer started with the AI SDK route on instance A is read
at the same time as OpenAI chat completion chunks, AI SDK UI message chunks and AG-UI events,
on A and on instance B (one redis-server), and every reader gets the same text and tool call
and its own protocol's end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests._support.procs import ServerProcess, serve_process

from ._ai import WEATHER, weather
from ._llm import read_stream

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


@pytest.fixture
def pair(redis_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = {
        "MIANZHANG_FILES__ENABLED": "false",
        "MIANZHANG_LOG_BACKEND": "redis",
        "MIANZHANG_REDIS_URL": redis_url,
    }
    with serve_process(env=env) as a, serve_process(env=env) as b:
        yield a, b


def chat_shape(events: list[Any]) -> tuple[str, str, str]:
    text, args, name = "", "", ""
    assert events[-1].data == "[DONE]"
    for e in events[:-1]:
        for choice in json.loads(e.data)["choices"]:
            delta = choice["delta"]
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                name += call["function"].get("name") or ""
                args += call["function"].get("arguments") or ""
    return text, name, args


def ui_shape(events: list[Any]) -> tuple[str, str, str]:
    assert events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert chunks[-1]["type"] == "finish"
    text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
    args = "".join(c["inputTextDelta"] for c in chunks if c["type"] == "tool-input-delta")
    name = "".join(c["toolName"] for c in chunks if c["type"] == "tool-input-start")
    return text, name, args


def agui_shape(events: list[Any]) -> tuple[str, str, str]:
    payloads = [json.loads(e.data) for e in events]  # no [DONE]
    assert payloads[-1]["type"] == "RUN_FINISHED"
    text = "".join(p["delta"] for p in payloads if p["type"] == "TEXT_MESSAGE_CONTENT")
    args = "".join(p["delta"] for p in payloads if p["type"] == "TOOL_CALL_ARGS")
    name = "".join(p["toolCallName"] for p in payloads if p["type"] == "TOOL_CALL_START")
    return text, name, args


SHAPES = {"chat": chat_shape, "ui": ui_shape, "agui": agui_shape}


def test_one_generation_is_read_in_three_shapes_on_two_instances(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    body = {
        "id": "shapes-1",
        "messages": [
            {"id": "u1", "role": "user", "parts": [{"type": "text", "text": weather(0.04)}]}
        ],
        "model": "scripted",
    }
    with (
        httpx.stream("POST", f"{a.url}/v1/ui/chat", json=body, timeout=30) as started,
        ThreadPoolExecutor(6) as pool,
    ):
        assert started.status_code == 200
        stream = started.headers["x-stream-id"]
        readers = {
            (server.url, shape): pool.submit(
                read_stream, f"{server.url}/v1/streams/{stream}?format={shape}"
            )
            for server in (a, b)
            for shape in SHAPES
        }
        own = b"".join(started.iter_raw())  # the POST's own stream, read to its end meanwhile
        results = {key: SHAPES[key[1]](future.result(30)) for key, future in readers.items()}
    assert own.endswith(b"data: [DONE]\n\n")
    expected = (WEATHER, "get_weather", '{"city":"Paris"}')
    for key, shape in results.items():
        assert shape == expected, key
    first = read_stream(f"{b.url}/v1/streams/{stream}?format=ui")[0]
    assert json.loads(first.data) == {
        "type": "start",
        "messageId": stream,
        "messageMetadata": {"model": "scripted"},
    }
