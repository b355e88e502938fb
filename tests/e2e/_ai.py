"""Shared pieces of the AI front-end e2e tests: scripts for the scripted model, running the
real ``ai`` package against a server, and what a UIMessage says."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests._support.node import run_node

WEATHER = "The weather in Paris is sunny and warm today, with a light breeze."
TOOL_CALL = {"name": "get_weather", "id": "call_w", "arguments": {"city": "Paris"}, "chunks": 4}


def script(steps: list[Any], delay: float = 0.0) -> str:
    """A user message the scripted model plays."""
    return json.dumps({"script": steps, "delay": delay})


def weather(delay: float = 0.05) -> str:
    """Reasoning, text and a tool call, one delta every ``delay`` seconds."""
    steps = [{"reasoning": "The user wants the weather."}, {"words": WEATHER}]
    return script([*steps, {"tool_call": TOOL_CALL}], delay)


def long_text(words: int = 150, delay: float = 0.03) -> str:
    return script([{"words": " ".join(f"word{i}" for i in range(words))}], delay)


def ai_sdk(job: dict[str, Any], timeout: float = 60.0) -> Any:
    """Run ``tests/node/ai_sdk_live.mjs`` (the real ``ai`` package) with ``job``."""
    return run_node("ai_sdk_live.mjs", job, timeout=timeout)


def answer(result: dict[str, Any]) -> dict[str, Any]:
    """The last message the client holds (it must be the assistant's answer)."""
    message: dict[str, Any] = result["messages"][-1]
    assert message["role"] == "assistant", result["messages"]
    return message


def text_of(message: dict[str, Any]) -> str:
    return "".join(p["text"] for p in message["parts"] if p["type"] == "text")


def kinds(message: dict[str, Any]) -> list[str]:
    return [p["type"] for p in message["parts"]]


def without_timings(message: dict[str, Any]) -> dict[str, Any]:
    """The message without what differs between two runs of one script (ids, timings)."""
    metadata = {k: v for k, v in (message.get("metadata") or {}).items() if k != "timings"}
    return {"role": message["role"], "parts": message["parts"], "metadata": metadata}


def info(base: str, stream: str) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{base}/v1/streams/{stream}/info", timeout=10).json()
    return found


def saved_chat(base: str, chat_id: str, headers: dict[str, str] | None = None) -> Any:
    return httpx.get(f"{base}/v1/chats/{chat_id}", headers=headers or {}, timeout=10).json()
