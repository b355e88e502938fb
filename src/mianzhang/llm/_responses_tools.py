"""Responses API tools -> the gateway's (OpenAI chat) tool parameters. No I/O.

=====================================================  =======================================
Responses request                                      chat parameter sent to the provider
=====================================================  =======================================
``tools: [{"type": "function", "name", "description",  ``tools: [{"type": "function",
"parameters", "strict"}]``                             "function": {name, description,
                                                       parameters, strict}}]``
``tool_choice: "auto" | "none" | "required"``          the same
``tool_choice: {"type": "function", "name"}``          ``{"type": "function", "function":
                                                       {"name"}}``
``parallel_tool_calls``                                the same
=====================================================  =======================================

Hosted tools (``web_search``, ``file_search``, ``code_interpreter``, ``mcp``, ...) run inside
OpenAI's service: no other upstream can run them, so they are refused with a 400 naming the
tool, never dropped silently. The model's tool calls come back as ``function_call`` output
items (``_responses_items.py``); the caller answers with ``function_call_output`` input items
(``_responses_input.py``).
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, StrictBool

from .._errors import InvalidLLMRequest

__all__ = ["ResponsesTools", "chat_tool", "chat_tool_choice"]

_CHOICES: Final = frozenset({"auto", "none", "required"})


def _function_fields(tool: dict[str, Any], i: int) -> dict[str, Any]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidLLMRequest(
            f"tools[{i}].name: a function tool needs a name", param=f"tools[{i}].name"
        )
    function: dict[str, Any] = {"name": name}
    for field, kind in (("description", str), ("parameters", dict), ("strict", bool)):
        value = tool.get(field)
        if value is None:
            continue
        if not isinstance(value, kind):
            raise InvalidLLMRequest(
                f"tools[{i}].{field}: must be a {kind.__name__}", param=f"tools[{i}].{field}"
            )
        function[field] = value
    return function


def chat_tool(tool: Any, i: int) -> dict[str, Any]:
    """The chat tool for Responses tool ``i`` (a 400 for anything but a function tool)."""
    if not isinstance(tool, dict):
        raise InvalidLLMRequest(f"tools[{i}]: must be an object", param=f"tools[{i}]")
    kind = tool.get("type")
    if kind != "function":
        raise InvalidLLMRequest(
            f"tools[{i}].type: {kind!r} tools run inside OpenAI's service and are not supported"
            " by this gateway (only function tools)",
            param=f"tools[{i}].type",
        )
    return {"type": "function", "function": _function_fields(tool, i)}


def chat_tool_choice(choice: Any) -> str | dict[str, Any]:
    """The chat ``tool_choice`` for a Responses ``tool_choice``."""
    if isinstance(choice, str) and choice in _CHOICES:
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if isinstance(name, str) and name:
            return {"type": "function", "function": {"name": name}}
        raise InvalidLLMRequest("tool_choice.name: Field required", param="tool_choice.name")
    raise InvalidLLMRequest(
        "tool_choice: must be 'auto', 'none', 'required' or {'type': 'function', 'name': ...}",
        param="tool_choice",
    )


class ResponsesTools(BaseModel):
    """The tool fields of a Responses request (a base of ``ResponsesBody``)."""

    model_config = ConfigDict(extra="allow")

    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None

    def chat_tool_params(self) -> dict[str, Any]:
        """The chat parameters of the tool fields (see the module docstring)."""
        params: dict[str, Any] = {}
        if self.tools:
            params["tools"] = [chat_tool(tool, i) for i, tool in enumerate(self.tools)]
        if self.tool_choice is not None:
            params["tool_choice"] = chat_tool_choice(self.tool_choice)
        if self.parallel_tool_calls is not None:
            params["parallel_tool_calls"] = self.parallel_tool_calls
        return params

    def echo_tool_params(self) -> dict[str, Any]:
        """The tool fields as the response object echoes them (only those given)."""
        echo: dict[str, Any] = {}
        if self.tools:
            echo["tools"] = [_echo_tool(chat_tool(tool, i)) for i, tool in enumerate(self.tools)]
        if self.tool_choice is not None:
            echo["tool_choice"] = self.tool_choice
        if self.parallel_tool_calls is not None:
            echo["parallel_tool_calls"] = self.parallel_tool_calls
        return echo


def _echo_tool(chat: dict[str, Any]) -> dict[str, Any]:
    function = chat["function"]
    return {
        "type": "function",
        "name": function["name"],
        "description": function.get("description"),
        "parameters": function.get("parameters"),
        "strict": function.get("strict", True),
    }
