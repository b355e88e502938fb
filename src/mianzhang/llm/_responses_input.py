"""Responses API input and stored responses: ``input`` items as chat messages, and the
response object rebuilt from a stream's Responses events (``GET /v1/responses/{id}``)."""

from __future__ import annotations

from typing import Any

import orjson

from .._errors import InvalidLLMRequest

__all__ = ["ResponseSnapshot", "responses_input_to_messages"]


def responses_input_to_messages(input: Any, instructions: str | None) -> list[dict[str, Any]]:
    """Chat messages for a Responses API ``input`` (a string or a list of message items)."""
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    if isinstance(input, str):
        messages.append({"role": "user", "content": input})
        return messages
    if not isinstance(input, list) or not input:
        raise InvalidLLMRequest(
            "input must be a string or a non-empty list of messages", param="input"
        )
    for i, item in enumerate(input):
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            raise InvalidLLMRequest(f"input[{i}] must be a message item", param=f"input[{i}]")
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise InvalidLLMRequest(f"input[{i}].role is not supported", param=f"input[{i}].role")
        content = item.get("content")
        if isinstance(content, list):
            texts = [
                part.get("text", "")
                for part in content
                if isinstance(part, dict)
                and part.get("type") in ("input_text", "output_text", "text")
            ]
            content = "".join(texts)
        if not isinstance(content, str):
            raise InvalidLLMRequest(f"input[{i}].content must be text", param=f"input[{i}].content")
        messages.append({"role": "system" if role == "developer" else role, "content": content})
    return messages


class ResponseSnapshot:
    """Rebuilds the current response object from its stream's stored events."""

    def __init__(self) -> None:
        self.response: dict[str, Any] | None = None
        self._text: list[str] = []
        self._item_id: str | None = None
        self.last_sequence = -1

    def apply(self, data: str) -> None:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        seq = event.get("sequence_number")
        if isinstance(seq, int):
            self.last_sequence = seq
        if isinstance(event.get("response"), dict):
            self.response = event["response"]
        elif event.get("type") == "response.output_text.delta":
            self._text.append(str(event.get("delta", "")))
            self._item_id = str(event.get("item_id"))

    def result(self) -> dict[str, Any] | None:
        """The response object: final if the response ended, else in progress with the text
        generated so far."""
        if self.response is None:
            return None
        response = dict(self.response)
        if response.get("status") == "in_progress" and self._text:
            part = {"type": "output_text", "text": "".join(self._text), "annotations": []}
            response["output"] = [
                {
                    "id": self._item_id,
                    "type": "message",
                    "status": "in_progress",
                    "role": "assistant",
                    "content": [part],
                }
            ]
        return response
