"""AG-UI's ``RunAgentInput`` (what ``HttpAgent`` POSTs) as gateway chat messages and tools.

``HttpAgent`` (``@ag-ui/client`` 1.0) POSTs, with ``Accept: text/event-stream``::

    {threadId, runId, protocolVersion?, parentRunId?, state, messages, tools, context,
     forwardedProps, resume?}

Conversion to OpenAI chat messages:

* ``system`` and ``developer`` messages become ``system`` messages (``developer`` is not
  accepted by every OpenAI-compatible server); ``context`` entries become one more system
  message after the leading ones (``description: value`` per line).
* ``user`` content is a string or parts: ``text``; ``image`` (``data`` source -> data URL,
  ``url`` source); ``audio`` (wav/mp3 data); ``document`` (data -> ``file``); the 0.x
  ``binary`` part (``mimeType`` with ``data`` or ``url``) is accepted too. ``video`` and
  provider ``file`` handles are rejected (no OpenAI chat equivalent).
* ``assistant``: ``content`` and ``toolCalls`` (-> ``tool_calls``); a tool call without a
  ``tool`` message answering it anywhere in the conversation is left out (OpenAI rejects an
  assistant ``tool_calls`` message not followed by every result: a front-end that moves on
  without answering a tool would otherwise break the thread).
* ``tool``: ``toolCallId`` and ``content`` (text parts joined); ``error`` is appended as
  ``Error: ...``. A result for a tool call the conversation never made is rejected.
* ``reasoning`` and ``activity`` messages are dropped (front-end only; ``HttpAgent`` itself
  leaves activity messages out of its input).
* ``tools`` become OpenAI function tools (names must match ``^[A-Za-z0-9_-]{1,64}$``, as
  OpenAI requires); ``state``, ``forwardedProps`` and ``parentRunId`` are passed through.

Every problem raises :class:`~mianzhang.InvalidLLMRequest` with ``param`` set to its place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from .._errors import InvalidLLMRequest
from ._content_parts import file_part
from ._validation import first_problem

__all__ = ["AGUIRun", "parse_run_agent_input"]

_ROLES: Final = ("developer", "system", "assistant", "user", "tool", "activity", "reasoning")
_TOOL_NAME: Final = r"^[A-Za-z0-9_-]{1,64}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)


class _Function(_Model):
    name: str = Field(min_length=1)
    arguments: str


class _ToolCall(_Model):
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: _Function


class _Assistant(_Model):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Text(_Model):
    content: str


class _TextPart(_Model):
    text: str


class _User(_Model):
    content: str | list[dict[str, Any]]


class _ToolResult(_Model):
    tool_call_id: str = Field(min_length=1)
    content: str | list[dict[str, Any]]
    error: str | None = None


class _Source(_Model):
    type: Literal["data", "url"]
    value: str
    mime_type: str | None = None


class _MediaPart(_Model):
    source: _Source


class _Binary(_Model):
    mime_type: str
    data: str | None = None
    url: str | None = None
    filename: str | None = None


class _Tool(_Model):
    name: str = Field(pattern=_TOOL_NAME)
    description: str = ""
    parameters: Any = None


class _Context(_Model):
    description: str
    value: str


class _Input(_Model):
    thread_id: str = Field(min_length=1, max_length=256)
    run_id: str = Field(min_length=1, max_length=256)
    parent_run_id: str | None = None
    state: Any = None
    messages: list[dict[str, Any]]
    tools: list[_Tool] | None = None
    context: list[_Context] | None = None
    forwarded_props: Any = None


@dataclass(frozen=True, slots=True)
class AGUIRun:
    """A validated run request: gateway ``messages`` and OpenAI ``tools`` (``None``: none)."""

    thread_id: str
    run_id: str
    parent_run_id: str | None
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    state: Any
    forwarded_props: Any


def _invalid(where: str, exc: ValidationError) -> InvalidLLMRequest:
    place, message = first_problem(where, exc)
    return InvalidLLMRequest(f"{place}: {message}", param=place)


def _parse(model: type[Any], raw: Any, where: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _invalid(where, exc) from None


def _media(kind: str, raw: dict[str, Any], at: str) -> dict[str, Any]:
    if kind == "binary":
        b: _Binary = _parse(_Binary, raw, at)
        url = b.url if b.data is None else f"data:{b.mime_type};base64,{b.data}"
        if url is None:
            raise InvalidLLMRequest(f"{at}: a binary part needs data or url", param=at)
        return file_part(b.mime_type, url, b.filename, at)
    if kind == "video":
        raise InvalidLLMRequest(f"{at}: video input is not supported", param=f"{at}.type")
    if isinstance(raw.get("source"), dict) and raw["source"].get("type") == "file":
        raise InvalidLLMRequest(
            f"{at}.source: provider file handles are not supported; send the data",
            param=f"{at}.source",
        )
    source = _parse(_MediaPart, raw, at).source
    mime = source.mime_type or ("image/*" if kind == "image" else "")
    if source.type == "data":
        if not source.mime_type:
            raise InvalidLLMRequest(f"{at}.source.mimeType: required for data", param=at)
        return file_part(mime, f"data:{mime};base64,{source.value}", None, at)
    return file_part(mime if kind == "image" else mime or kind, source.value, None, at)


def _user_content(content: str | list[dict[str, Any]], where: str) -> Any:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for j, raw in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": _parse(_TextPart, raw, at).text})
        elif kind in ("image", "audio", "document", "video", "binary"):
            parts.append(_media(kind, raw, at))
        else:
            known = "text, image, audio, document, binary"
            raise InvalidLLMRequest(
                f"{at}.type: unknown content part {str(kind)[:64]!r} (known: {known})",
                param=f"{at}.type",
            )
    if not parts:
        raise InvalidLLMRequest(f"{where}.content: empty", param=f"{where}.content")
    return parts


def _text_of(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        p["text"] for p in content if p.get("type") == "text" and isinstance(p.get("text"), str)
    )


def _answered(messages: Sequence[dict[str, Any]]) -> set[str]:
    return {
        m["toolCallId"]
        for m in messages
        if m.get("role") == "tool" and isinstance(m.get("toolCallId"), str)
    }


def _message(
    raw: dict[str, Any], where: str, answered: set[str], made: set[str]
) -> dict[str, Any] | None:
    role = raw.get("role")
    if role not in _ROLES:
        known = ", ".join(_ROLES)
        raise InvalidLLMRequest(
            f"{where}.role: unknown role {str(role)[:64]!r} (known: {known})", param=f"{where}.role"
        )
    if role in ("reasoning", "activity"):
        return None
    if role in ("system", "developer"):
        return {"role": "system", "content": _parse(_Text, raw, where).content}
    if role == "user":
        return {"role": "user", "content": _user_content(_parse(_User, raw, where).content, where)}
    if role == "tool":
        result: _ToolResult = _parse(_ToolResult, raw, where)
        if result.tool_call_id not in made:
            raise InvalidLLMRequest(
                f"{where}.toolCallId: no earlier assistant message made tool call "
                f"{result.tool_call_id[:64]!r}",
                param=f"{where}.toolCallId",
            )
        text = _text_of(result.content)
        if result.error:
            text = f"{text}\n\nError: {result.error}" if text else f"Error: {result.error}"
        return {"role": "tool", "tool_call_id": result.tool_call_id, "content": text}
    assistant: _Assistant = _parse(_Assistant, raw, where)
    calls = [c for c in assistant.tool_calls or () if c.id in answered]
    made.update(c.id for c in calls)
    if not calls and not assistant.content:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": assistant.content}
    if calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.function.name, "arguments": c.function.arguments},
            }
            for c in calls
        ]
    return message


def _with_context(messages: list[dict[str, Any]], context: Sequence[_Context]) -> None:
    if not context:
        return
    lines = "\n".join(f"- {c.description}: {c.value}" for c in context)
    at = next((i for i, m in enumerate(messages) if m["role"] != "system"), len(messages))
    messages.insert(at, {"role": "system", "content": f"Context for this run:\n{lines}"})


def parse_run_agent_input(body: Any) -> AGUIRun:
    """The run in ``body`` (decoded JSON), converted (see the module docstring);
    :class:`InvalidLLMRequest` names the first problem."""
    if not isinstance(body, dict):
        raise InvalidLLMRequest("body: expected a JSON object", param="body")
    run: _Input = _parse(_Input, body, "")
    answered = _answered(run.messages)
    made: set[str] = set()
    messages = []
    for i, raw in enumerate(run.messages):
        converted = _message(raw, f"messages[{i}]", answered, made)
        if converted is not None:
            messages.append(converted)
    _with_context(messages, run.context or ())
    tools = [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters or {"type": "object", "properties": {}},
            },
        }
        for t in run.tools or ()
    ]
    return AGUIRun(
        thread_id=run.thread_id,
        run_id=run.run_id,
        parent_run_id=run.parent_run_id,
        messages=messages,
        tools=tools or None,
        state=run.state,
        forwarded_props=run.forwarded_props,
    )
