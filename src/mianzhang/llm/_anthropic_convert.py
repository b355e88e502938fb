"""A validated Messages request -> the gateway's :class:`~mianzhang.llm.ChatRequest`.

The gateway's requests are OpenAI-shaped, so every provider (OpenAI-compatible, Anthropic,
local, demo) serves Messages API clients. Per the tables of :mod:`._anthropic_tables`:

* ``system`` -> a first ``system`` message (a string stays a string, text blocks become text
  parts);
* a ``user`` turn -> one ``role: tool`` message per ``tool_result`` block (``tool_use_id`` ->
  ``tool_call_id``; content string or parts), then one ``user`` message with the other blocks
  as parts: text, images (``image_url``: a ``data:`` URL for base64, else the URL), base64 PDF
  documents (``file`` parts), plain-text documents (text parts); a ``document`` by URL cannot
  be expressed (400);
* an ``assistant`` turn -> one ``assistant`` message: text (one block: a string; several:
  text parts), ``tool_use`` -> ``tool_calls`` (``input`` as JSON ``arguments``); thinking
  blocks are not forwarded;
* ``stop_sequences`` -> ``stop``; ``temperature``, ``top_p``, ``top_k`` as they are (``top_k``
  is not an OpenAI parameter: OpenAI-compatible servers such as vLLM take it, OpenAI refuses
  it); ``metadata.user_id`` -> ``user``; custom tools -> function tools (``input_schema`` ->
  ``parameters``); ``tool_choice`` per :data:`TOOL_CHOICES`, ``disable_parallel_tool_use`` ->
  ``parallel_tool_calls: false``; ``thinking`` (enabled) -> ``reasoning_effort`` per its budget,
  else ``output_config.effort``; ``output_config.format`` -> ``response_format`` (JSON schema).

Not carried (no OpenAI equivalent): ``is_error`` of a tool result, ``cache_control``, document
``title``/``context``, ``thinking`` / ``redacted_thinking`` blocks of earlier turns.

:func:`estimate_input_tokens` counts a request as the gateway does when an upstream reports no
usage (:mod:`._tokens`), plus tool definitions and tool-call arguments.
"""

from __future__ import annotations

from typing import Any

import orjson

from .._errors import InvalidLLMRequest
from ._anthropic_requests import (
    Block,
    DocumentBlock,
    ImageBlock,
    MessagesBody,
    MessagesRequest,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from ._anthropic_tables import OUTPUT_EFFORTS, TOOL_CHOICES, effort_for_budget
from ._tokens import estimate_request_tokens
from ._types import ChatRequest

__all__ = [
    "chat_request",
    "count_tokens",
    "estimate_input_tokens",
    "openai_messages",
    "openai_params",
]


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _image_part(block: ImageBlock) -> dict[str, Any]:
    source = block.source
    url = source.url if source.type == "url" else f"data:{source.media_type};base64,{source.data}"
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: DocumentBlock, loc: str) -> dict[str, Any]:
    source = block.source
    if source.type == "text":
        return _text_part(source.data)
    if source.type == "base64":
        file = {
            "filename": block.title or "document.pdf",
            "file_data": f"data:{source.media_type};base64,{source.data}",
        }
        return {"type": "file", "file": file}
    raise InvalidLLMRequest(
        f"{loc}.source: documents by URL are not supported by this gateway (send them base64)",
        param=f"{loc}.source",
    )


def _part(block: Block, loc: str) -> dict[str, Any]:
    """The OpenAI content part of a text, image or document block."""
    if isinstance(block, TextBlock):
        return _text_part(block.text)
    if isinstance(block, ImageBlock):
        return _image_part(block)
    if isinstance(block, DocumentBlock):
        return _document_part(block, loc)
    raise InvalidLLMRequest(f"{loc}.type: {block.type!r} cannot appear here", param=f"{loc}.type")


def _tool_message(block: ToolResultBlock, loc: str) -> dict[str, Any]:
    content: str | list[dict[str, Any]]
    if block.content is None or isinstance(block.content, str):
        content = block.content or ""
    else:
        content = [_part(b, f"{loc}.content.{j}") for j, b in enumerate(block.content)]
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": content}


def _user_messages(blocks: list[Block], loc: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        if isinstance(block, ToolResultBlock):
            out.append(_tool_message(block, f"{loc}.{j}"))
        else:
            parts.append(_part(block, f"{loc}.{j}"))
    if parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        out.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    return out


def _assistant_message(blocks: list[Block]) -> dict[str, Any] | None:
    texts = [b.text for b in blocks if isinstance(b, TextBlock)]
    calls = [
        {
            "id": b.id,
            "type": "function",
            "function": {"name": b.name, "arguments": orjson.dumps(b.input).decode()},
        }
        for b in blocks
        if isinstance(b, ToolUseBlock)
    ]
    if not texts and not calls:
        return None  # thinking only: nothing an OpenAI-shaped upstream can take
    message: dict[str, Any] = {"role": "assistant"}
    if len(texts) == 1:
        message["content"] = texts[0]
    else:
        message["content"] = [_text_part(t) for t in texts] if texts else None
    if calls:
        message["tool_calls"] = calls
    return message


def openai_messages(request: MessagesRequest) -> list[dict[str, Any]]:
    """The request's system prompt and turns as OpenAI chat messages."""
    messages: list[dict[str, Any]] = []
    system = request.system
    if isinstance(system, str):
        messages.append({"role": "system", "content": system})
    elif system:
        messages.append({"role": "system", "content": [_text_part(b.text) for b in system]})
    for i, (role, blocks) in enumerate(request.turns):
        if role == "user":
            messages.extend(_user_messages(blocks, f"messages.{i}.content"))
        else:
            message = _assistant_message(blocks)
            if message is not None:
                messages.append(message)
    return messages


def _tool_params(request: MessagesRequest) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if request.tools:
        functions = []
        for tool in request.tools:
            function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
            if tool.description is not None:
                function["description"] = tool.description
            if tool.strict is not None:
                function["strict"] = tool.strict
            functions.append({"type": "function", "function": function})
        params["tools"] = functions
    choice = request.body.tool_choice
    if choice is not None:
        if choice.type == "tool":
            params["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        else:
            params["tool_choice"] = TOOL_CHOICES[choice.type]
        if choice.disable_parallel_tool_use and request.tools:
            params["parallel_tool_calls"] = False
    return params


def _reasoning_params(request: MessagesRequest) -> dict[str, Any]:
    body = request.body
    params: dict[str, Any] = {}
    thinking = body.thinking
    output = body.output_config
    if thinking is not None and thinking.type == "enabled" and thinking.budget_tokens:
        params["reasoning_effort"] = effort_for_budget(thinking.budget_tokens)
    elif output is not None and output.effort is not None:
        params["reasoning_effort"] = OUTPUT_EFFORTS[output.effort]
    if output is not None and output.format is not None:
        schema = {"name": "output", "schema": output.format.schema_}
        params["response_format"] = {"type": "json_schema", "json_schema": schema}
    return params


def openai_params(request: MessagesRequest) -> dict[str, Any]:
    """The request's sampling, tool and reasoning parameters as OpenAI parameters."""
    params: dict[str, Any] = {}
    body = request.body
    if isinstance(body, MessagesBody):
        if body.stop_sequences:
            params["stop"] = list(body.stop_sequences)
        for name in ("temperature", "top_p", "top_k"):
            value = getattr(body, name)
            if value is not None:
                params[name] = value
        if body.metadata is not None and body.metadata.user_id:
            params["user"] = body.metadata.user_id
    params.update(_tool_params(request))
    params.update(_reasoning_params(request))
    return params


def chat_request(request: MessagesRequest) -> ChatRequest:
    """The gateway request for a validated Messages request."""
    return ChatRequest(
        messages=openai_messages(request),
        max_tokens=request.max_tokens,
        params=openai_params(request),
    )


def estimate_input_tokens(request: ChatRequest) -> int:
    """Input tokens of ``request`` by the gateway's estimate (:func:`estimate_request_tokens`:
    message text, tool-call arguments and tool definitions as JSON text). Equal to
    :func:`estimate_prompt_tokens` of its messages for a request without tools."""
    return estimate_request_tokens(request)


def count_tokens(request: MessagesRequest) -> dict[str, int]:
    """The body of ``POST /v1/messages/count_tokens``'s answer: ``{"input_tokens": n}``."""
    return {"input_tokens": estimate_input_tokens(chat_request(request))}
