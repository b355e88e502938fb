"""Helpers for the chat routes' in-process tests: an app with the scripted model, UIMessages,
scripts as user messages, and reading SSE answers."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

from mianzhang._sse import ServerSentEvent, SSEDecoder
from mianzhang.server import Settings, create_app


def make_client(**overrides: Any) -> TestClient:
    values: dict[str, Any] = {"web": False, "files": {"enabled": False}}
    values.update(overrides)
    return TestClient(create_app(Settings(**values)))


def script(steps: list[Any], delay: float = 0.0) -> str:
    return json.dumps({"script": steps, "delay": delay})


def user(text: str, ident: str = "u1") -> dict[str, Any]:
    return {"id": ident, "role": "user", "parts": [{"type": "text", "text": text}]}


def chat_body(chat_id: str, *messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": chat_id,
        "messages": list(messages),
        "trigger": "submit-message",
        "model": "scripted",
        **extra,
    }


def events(response: Response) -> list[ServerSentEvent]:
    return SSEDecoder().decode(response.content)


def chunks(response: Response) -> list[Any]:
    """The JSON data of each event (``[DONE]`` kept as the string)."""
    return [e.data if e.data == "[DONE]" else json.loads(e.data) for e in events(response)]
