"""The gateway's OpenAI-shaped :class:`~mianzhang.llm.ChatRequest` -> a Messages API request
body, for upstreams that speak Anthropic's API (the ``anthropic`` provider).

The inverse of :mod:`._anthropic_convert`, per the tables of :mod:`._anthropic_tables`:

* ``system`` and ``developer`` messages -> ``system`` (anywhere in the conversation: Anthropic
  has no system turns, so later ones are hoisted, in order); a string stays a string when it
  is the only one, else text blocks;
* ``user`` -> a user turn (a string stays a string; parts -> text, image — ``data:`` URLs as
  base64, other URLs by URL — and ``file`` parts holding base64 data -> documents);
* ``assistant`` -> text blocks (empty text dropped: Anthropic refuses it) and ``tool_calls``
  -> ``tool_use`` blocks (``arguments`` must be a JSON object);
* ``tool`` -> a ``tool_result`` block in a user turn; consecutive turns of one role are merged
  into one (tool results first, as Anthropic requires);
* ``stop`` -> ``stop_sequences``; ``temperature``, ``top_p``, ``top_k`` as they are; ``user``
  -> ``metadata.user_id``; function tools -> custom tools; ``tool_choice`` per
  :data:`OPENAI_TOOL_CHOICES`; ``parallel_tool_calls: false`` ->
  ``disable_parallel_tool_use``; ``reasoning_effort`` -> ``thinking`` (budget per
  :data:`EFFORT_BUDGETS`, kept below ``max_tokens``; left out when ``max_tokens`` leaves no room
  for Anthropic's minimum of 1024, for ``none``, and while the last assistant turn holds tool
  calls — Anthropic then requires that turn's signed thinking block, which the gateway's
  messages do not carry); ``response_format`` (JSON schema) -> ``output_config.format``.

``max_tokens`` is required by Anthropic: a request without one gets the provider's default.
Parameters with no Anthropic equivalent and no effect on the content (``seed``,
``frequency_penalty``, ``presence_penalty``, ``logit_bias``, ``store``, ``metadata``,
``service_tier``, ``stream_options``, ...) are not sent. What would change the answer but
cannot be expressed (``n > 1``, ``logprobs``, ``response_format: json_object``, audio or file-id
content, non-function tools, legacy ``function`` messages) raises
:class:`~mianzhang.UpstreamUnsupported` before anything is sent.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from .._errors import UpstreamUnsupported
from ._anthropic_tables import EFFORT_BUDGETS, OPENAI_PARTS, OPENAI_TOOL_CHOICES
from ._types import ChatRequest

__all__ = ["messages_body"]

_MIN_BUDGET: Final = 1024
_SYSTEM_ROLES: Final = frozenset({"system", "developer"})
Block = dict[str, Any]


def _text_blocks(content: Any, where: str) -> list[Block]:
    """Text blocks of a string or of text parts (empty text dropped)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[Block] = []
    for part in content or ():
        if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
            raise UpstreamUnsupported(f"{where}: only text parts can be sent here")
        text = part.get("text") or part.get("refusal") or ""
        if text:
            blocks.append({"type": "text", "text": text})
    return blocks


def _image(part: dict[str, Any], where: str) -> Block:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise UpstreamUnsupported(f"{where}: an image_url part without a url")
    if url.startswith("data:") and ";base64," in url:
        media_type, data = url[5:].split(";base64,", 1)
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _document(part: dict[str, Any], where: str) -> Block:
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str) or not data.startswith("data:") or ";base64," not in data:
        raise UpstreamUnsupported(f"{where}: only files given as base64 data can be sent")
    media_type, payload = data[5:].split(";base64,", 1)
    source = {"type": "base64", "media_type": media_type, "data": payload}
    return {"type": "document", "source": source}


def _blocks(content: Any, where: str) -> list[Block]:
    """Content blocks of a user (or tool) message's content."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[Block] = []
    for j, part in enumerate(content or ()):
        kind = OPENAI_PARTS.get(str(part.get("type"))) if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image":
            blocks.append(_image(part, f"{where}[{j}]"))
        elif kind == "document":
            blocks.append(_document(part, f"{where}[{j}]"))
        else:
            raise UpstreamUnsupported(f"{where}[{j}]: this content part cannot be sent")
    return blocks


def _tool_use(call: Any, where: str) -> Block:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or call.get("type", "function") != "function":
        raise UpstreamUnsupported(f"{where}: only function tool calls can be sent")
    try:
        arguments = orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise UpstreamUnsupported(f"{where}: the arguments are not a JSON object")
    return {
        "type": "tool_use",
        "id": call.get("id"),
        "name": function.get("name"),
        "input": arguments,
    }


def _tool_result(message: dict[str, Any], where: str) -> Block:
    content = message.get("content")
    block: Block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    if isinstance(content, str):
        block["content"] = content
    elif content:
        block["content"] = _blocks(content, where)
    return block


def _append(turns: list[Block], role: str, content: str | list[Block]) -> None:
    """Add a turn, merged into the previous one when it has the same role."""
    if turns and turns[-1]["role"] == role:
        last = turns[-1]
        if isinstance(last["content"], str):
            last["content"] = [{"type": "text", "text": last["content"]}]
        last["content"] += (
            [{"type": "text", "text": content}] if isinstance(content, str) else content
        )
    else:
        turns.append({"role": role, "content": content})


def _turn(message: dict[str, Any], where: str) -> tuple[str, str | list[Block]] | None:
    """The ``(role, content)`` of a non-system message (``None``: nothing to send)."""
    role = message.get("role")
    content = message.get("content")
    if role == "user":
        return "user", content if isinstance(content, str) else _blocks(content, where)
    if role == "tool":
        return "user", [_tool_result(message, where)]
    if role != "assistant":
        raise UpstreamUnsupported(f"{where}: role {role!r} cannot be sent to this upstream")
    blocks = _text_blocks(content, where)
    blocks += [_tool_use(c, where) for c in message.get("tool_calls") or ()]
    return ("assistant", blocks) if blocks else None


def _convert(messages: list[dict[str, Any]]) -> tuple[str | list[Block], list[Block]]:
    """``(system, turns)`` of OpenAI chat messages: the system prompt is a string when one
    system message holds a string, else text blocks."""
    system: list[Block] = []
    system_texts: list[Any] = []
    turns: list[Block] = []
    for i, message in enumerate(messages):
        if message.get("role") in _SYSTEM_ROLES:
            system += _text_blocks(message.get("content"), f"messages[{i}]")
            system_texts.append(message.get("content"))
            continue
        turn = _turn(message, f"messages[{i}]")
        if turn is not None:
            _append(turns, *turn)
    if len(system_texts) == 1 and isinstance(system_texts[0], str):
        return system_texts[0], turns
    return system, turns


def _tools(params: dict[str, Any]) -> list[Block]:
    tools: list[Block] = []
    for tool in params.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise UpstreamUnsupported("only function tools can be offered to this upstream")
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        out: Block = {"name": function.get("name"), "input_schema": parameters}
        if function.get("description") is not None:
            out["description"] = function["description"]
        if function.get("strict") is not None:
            out["strict"] = function["strict"]
        tools.append(out)
    return tools


def _tool_choice(params: dict[str, Any]) -> Block | None:
    choice = params.get("tool_choice")
    out: Block | None = None
    if isinstance(choice, str) and choice in OPENAI_TOOL_CHOICES:
        out = {"type": OPENAI_TOOL_CHOICES[choice]}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    elif choice is not None:
        raise UpstreamUnsupported(f"tool_choice {choice!r} cannot be sent to this upstream")
    if params.get("parallel_tool_calls") is False and params.get("tools"):
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


def _thinking(params: dict[str, Any], max_tokens: int, turns: list[Block]) -> Block | None:
    effort = params.get("reasoning_effort")
    if effort is None or effort == "none":
        return None
    if effort not in EFFORT_BUDGETS:
        raise UpstreamUnsupported(f"reasoning_effort {effort!r} cannot be sent to this upstream")
    budget = min(EFFORT_BUDGETS[effort], max_tokens - 1)
    assistant = [t for t in turns if t["role"] == "assistant"]
    in_tool_loop = bool(assistant) and any(
        b.get("type") == "tool_use" for b in assistant[-1]["content"]
    )
    if budget < _MIN_BUDGET or in_tool_loop:
        return None
    return {"type": "enabled", "budget_tokens": budget}


def _refuse_unsupported(params: dict[str, Any]) -> None:
    if (params.get("n") or 1) > 1:
        raise UpstreamUnsupported("n > 1 cannot be sent to this upstream")
    if params.get("logprobs"):
        raise UpstreamUnsupported("logprobs cannot be sent to this upstream")
    fmt = params.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text", "json_schema"):
        raise UpstreamUnsupported(f"response_format {fmt.get('type')!r} cannot be sent")


def _sampling(params: dict[str, Any]) -> dict[str, Any]:
    body = {k: params[k] for k in ("temperature", "top_p", "top_k") if params.get(k) is not None}
    stop = params.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(params.get("user"), str):
        body["metadata"] = {"user_id": params["user"]}
    fmt = params.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
        body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    return body


def messages_body(model: str, request: ChatRequest, *, default_max_tokens: int) -> dict[str, Any]:
    """The streaming Messages API body for ``request`` (module docstring); raises
    :class:`UpstreamUnsupported` for what cannot be expressed."""
    params = request.params
    _refuse_unsupported(params)
    system, turns = _convert(request.messages)
    max_tokens = request.max_tokens or default_max_tokens
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": turns}
    if system:
        body["system"] = system
    body.update(_sampling(params))
    tools = _tools(params)
    if tools:
        body["tools"] = tools
    choice = _tool_choice(params)
    if choice is not None:
        body["tool_choice"] = choice
    thinking = _thinking(params, max_tokens, turns)
    if thinking is not None:
        body["thinking"] = thinking
    body["stream"] = True
    return body
