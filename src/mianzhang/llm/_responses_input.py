"""Responses API input and stored responses: ``input`` items as chat messages, and the
response object rebuilt from a stream's Responses events (``GET /v1/responses/{id}``).

Input items, in order, become chat messages: a ``message`` item (roles ``user``,
``assistant``, ``system``, ``developer`` -> ``system``; text content or ``input_text`` /
``output_text`` parts) one message; a ``function_call`` item (``call_id``, ``name``,
``arguments``) a tool call of the assistant message it follows (or of a new one); a
``function_call_output`` item (``call_id``, ``output``) a ``role: tool`` message; a
``reasoning`` item of an earlier turn nothing (it is not sent back upstream). Anything else is
a 400 naming the item.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from .._errors import InvalidLLMRequest

__all__ = ["ResponseSnapshot", "responses_input_to_messages"]

_TEXT_PARTS: Final = frozenset({"input_text", "output_text", "text"})


def responses_input_to_messages(input: Any, instructions: str | None) -> list[dict[str, Any]]:
    """Chat messages for a Responses API ``input``: a string, or a list of items (see the
    module docstring)."""
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
        _add_item(messages, item, i)
    return messages


def _add_item(messages: list[dict[str, Any]], item: Any, i: int) -> None:
    kind = item.get("type", "message") if isinstance(item, dict) else None
    if kind == "message":
        messages.append(_message(item, i))
    elif kind == "function_call":
        _add_call(messages, item, i)
    elif kind == "function_call_output":
        messages.append(_call_output(item, i))
    elif kind != "reasoning":  # reasoning of an earlier turn is not sent back upstream
        raise InvalidLLMRequest(
            f"input[{i}] must be a message, function_call or function_call_output item",
            param=f"input[{i}]",
        )


def _text(content: Any) -> Any:
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS
        )
    return content


def _message(item: dict[str, Any], i: int) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise InvalidLLMRequest(f"input[{i}].role is not supported", param=f"input[{i}].role")
    content = _text(item.get("content"))
    if not isinstance(content, str):
        raise InvalidLLMRequest(f"input[{i}].content must be text", param=f"input[{i}].content")
    return {"role": "system" if role == "developer" else role, "content": content}


def _field(item: dict[str, Any], name: str, i: int) -> str:
    value = item.get(name)
    if not isinstance(value, str) or (not value and name != "arguments"):
        raise InvalidLLMRequest(
            f"input[{i}].{name}: must be a non-empty string", param=f"input[{i}].{name}"
        )
    return value


def _add_call(messages: list[dict[str, Any]], item: dict[str, Any], i: int) -> None:
    """A ``function_call`` item: a tool call of the assistant message before it (the one
    whose text came just before, or a new one)."""
    function = {"name": _field(item, "name", i), "arguments": _field(item, "arguments", i)}
    call = {"id": _field(item, "call_id", i), "type": "function", "function": function}
    last = messages[-1] if messages else None
    if last is None or last.get("role") != "assistant":
        last = {"role": "assistant", "content": None}
        messages.append(last)
    last.setdefault("tool_calls", []).append(call)


def _call_output(item: dict[str, Any], i: int) -> dict[str, Any]:
    """A ``function_call_output`` item: the tool message answering its call."""
    output = _text(item.get("output"))
    if not isinstance(output, str):
        raise InvalidLLMRequest(
            f"input[{i}].output: must be text or text parts", param=f"input[{i}].output"
        )
    return {"role": "tool", "tool_call_id": _field(item, "call_id", i), "content": output}


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
