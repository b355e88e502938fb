"""The AI SDK's chat request (``DefaultChatTransport``'s POST body) as gateway chat messages.

``DefaultChatTransport`` (``ai`` 7) POSTs ``{...body, id, messages, trigger, messageId}``:
``id`` is the chat id, ``messages`` the whole conversation as UIMessages (``{id, role,
metadata?, parts}``), ``trigger`` ``submit-message`` or ``regenerate-message``, ``messageId``
the message being regenerated (or ``undefined``, left out of the JSON), and ``body`` any fields
the app adds (``useChat({ transport: new DefaultChatTransport({ body: {...} }) })`` or
``sendMessage(msg, { body })``); those come back in :attr:`UIChat.extra`.

Conversion to OpenAI chat messages follows the SDK's own ``convertToModelMessages``:

* ``system``: its text parts joined; ``user``: text parts and ``file`` parts (images as
  ``image_url``, audio as ``input_audio``, other files as ``file`` data URLs; see
  :mod:`mianzhang.llm._content_parts`); a user message needs at least one of them.
* ``assistant``: split into steps at ``step-start`` parts; each step becomes one assistant
  message (its text, its tool calls) followed by one ``tool`` message per tool result
  (``output-available``: the output, JSON unless a string; ``output-error``: the error text;
  ``output-denied`` or a denied approval: the denial). A ``steering-message`` part becomes a
  user message between steps.
* An assistant message whose ``metadata.status`` is ``"failed"`` (how the ``ui`` surface marks
  an answer that ended in an error) is not sent: its text is a fragment the model did not
  finish. It stays in the chat for the reader.
* Tool calls without a result yet (``input-streaming``, ``input-available``,
  ``approval-requested``, an approved call not run yet) are left out with their step's text
  kept: OpenAI rejects an assistant ``tool_calls`` message not followed by every result.
* Dropped, as display-only or not accepted as model input by OpenAI-compatible APIs:
  ``reasoning`` (no reasoning input in chat completions; providers that need it back, such as
  Anthropic's signed thinking, are not reached through this format), ``reasoning-file``,
  ``source-url``, ``source-document``, ``custom``, ``data-*`` and files in assistant messages.

Every problem raises :class:`~mianzhang.InvalidLLMRequest` with ``param`` set to its place
(``messages[2].parts[0].text``) and a message naming it: the server answers 400 before any
stream starts. Unknown part types are listed with the known ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._errors import InvalidLLMRequest
from ._content_parts import file_part
from ._validation import first_problem

__all__ = ["UIChat", "UIChatRequest", "UIMessage", "parse_ui_chat_request", "ui_messages_to_chat"]

_DROPPED: Final = frozenset(
    {"reasoning", "reasoning-file", "source-url", "source-document", "custom", "step-start"}
)
_KNOWN: Final = (
    "text, file, reasoning, step-start, tool-<name>, dynamic-tool, data-<name>, source-url, "
    "source-document, reasoning-file, custom, steering-message"
)
_RESULT_STATES: Final = frozenset({"output-available", "output-error", "output-denied"})


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class UIMessage(_Loose):
    """A UIMessage as the client sends it (parts are checked one by one on conversion)."""

    id: str = Field(max_length=1024)
    role: Literal["system", "user", "assistant"]
    metadata: Any = None
    parts: list[dict[str, Any]]


class _Text(_Loose):
    text: str


class _File(_Loose):
    media_type: str = Field(alias="mediaType")
    url: str
    filename: str | None = None


class _Approval(_Loose):
    approved: bool | None = None
    reason: str | None = None


class _Tool(_Loose):
    tool_call_id: str = Field(alias="toolCallId", min_length=1)
    state: Literal[
        "input-streaming",
        "input-available",
        "approval-requested",
        "approval-responded",
        "output-available",
        "output-error",
        "output-denied",
    ]
    tool_name: str | None = Field(default=None, alias="toolName")
    input: Any = None
    output: Any = None
    error_text: str | None = Field(default=None, alias="errorText")
    approval: _Approval | None = None


class _Steering(_Loose):
    parts: list[dict[str, Any]]


class UIChatRequest(_Loose):
    """``DefaultChatTransport``'s POST body (fields the app added are kept as extras)."""

    id: str = Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")
    messages: list[UIMessage] = Field(min_length=1)
    trigger: Literal["submit-message", "regenerate-message"] = "submit-message"
    message_id: str | None = Field(default=None, alias="messageId")


@dataclass(frozen=True, slots=True)
class UIChat:
    """A validated chat request: ``messages`` are the gateway (OpenAI chat) messages,
    ``ui_messages`` the UIMessages as sent, ``extra`` the body fields the app added."""

    chat_id: str
    trigger: str
    message_id: str | None
    messages: list[dict[str, Any]]
    ui_messages: list[UIMessage]
    extra: dict[str, Any]


def _invalid(where: str, exc: ValidationError) -> InvalidLLMRequest:
    place, message = first_problem(where, exc)
    return InvalidLLMRequest(f"{place}: {message}", param=place)


def parse_ui_chat_request(body: Any) -> UIChat:
    """The request in ``body`` (decoded JSON), every part checked and converted;
    :class:`InvalidLLMRequest` names the first problem."""
    if not isinstance(body, dict):
        raise InvalidLLMRequest("body: expected a JSON object", param="body")
    try:
        request = UIChatRequest.model_validate(body)
    except ValidationError as exc:
        raise _invalid("", exc) from None
    return UIChat(
        chat_id=request.id,
        trigger=request.trigger,
        message_id=request.message_id,
        messages=ui_messages_to_chat(request.messages),
        ui_messages=request.messages,
        extra=dict(request.model_extra or {}),
    )


def _parse(model: type[Any], raw: dict[str, Any], where: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _invalid(where, exc) from None


def _part_type(raw: Any, where: str) -> str:
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise InvalidLLMRequest(f"{where}: a part is an object with a string type", param=where)
    part_type: str = raw["type"]
    return part_type


def _unknown(part_type: str, where: str) -> InvalidLLMRequest:
    return InvalidLLMRequest(
        f"{where}.type: unknown part type {part_type[:64]!r} (known: {_KNOWN})",
        param=f"{where}.type",
    )


def _user_content(parts: Sequence[Any], where: str) -> str | list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for j, raw in enumerate(parts):
        at = f"{where}.parts[{j}]"
        kind = _part_type(raw, at)
        if kind == "text":
            content.append({"type": "text", "text": _parse(_Text, raw, at).text})
        elif kind == "file":
            f = _parse(_File, raw, at)
            content.append(file_part(f.media_type, f.url, f.filename, at))
        elif kind not in _DROPPED and not kind.startswith("data-"):
            raise _unknown(kind, at)
    if not content:
        raise InvalidLLMRequest(
            f"{where}.parts: a user message needs a text or file part", param=f"{where}.parts"
        )
    if len(content) == 1 and content[0]["type"] == "text":
        return str(content[0]["text"])
    return content


def _tool_result(tool: _Tool) -> str | None:
    """The tool message content of a tool part, ``None`` while it has no result."""
    denied = tool.approval is not None and tool.approval.approved is False
    if tool.state == "output-denied" or denied:
        reason = tool.approval.reason if tool.approval is not None else None
        return reason or "Tool call execution denied."
    if tool.state == "output-error":
        return tool.error_text or "the tool failed"
    if tool.state == "output-available":
        out = tool.output
        return out if isinstance(out, str) else orjson.dumps(out).decode()
    return None


@dataclass
class _Step:
    text: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)

    def flush(self, into: list[dict[str, Any]]) -> None:
        if self.text or self.calls:
            message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or None}
            if self.calls:
                message["tool_calls"] = self.calls
            into.append(message)
            into.extend(self.results)
        self.text, self.calls, self.results = [], [], []

    def add_tool(self, kind: str, raw: dict[str, Any], at: str) -> None:
        tool: _Tool = _parse(_Tool, raw, at)
        name = tool.tool_name if kind == "dynamic-tool" else kind[len("tool-") :]
        if not name:
            raise InvalidLLMRequest(f"{at}: a tool part needs a tool name", param=at)
        result = _tool_result(tool)
        if result is None:
            return  # no result yet: OpenAI needs one for every call
        arguments = orjson.dumps({} if tool.input is None else tool.input).decode()
        function = {"name": name, "arguments": arguments}
        self.calls.append({"id": tool.tool_call_id, "type": "function", "function": function})
        self.results.append({"role": "tool", "tool_call_id": tool.tool_call_id, "content": result})


def _assistant_part(step: _Step, raw: Any, at: str, into: list[dict[str, Any]]) -> None:
    kind = _part_type(raw, at)
    if kind == "text":
        step.text.append(_parse(_Text, raw, at).text)
        return
    if kind.startswith("tool-") or kind == "dynamic-tool":
        step.add_tool(kind, raw, at)
        return
    if kind in ("step-start", "steering-message"):
        step.flush(into)
    if kind == "steering-message":
        steering = _parse(_Steering, raw, at)
        into.append({"role": "user", "content": _user_content(steering.parts, at)})
        return
    if kind not in _DROPPED and kind != "file" and not kind.startswith("data-"):
        raise _unknown(kind, at)


def _assistant(parts: Sequence[Any], where: str, into: list[dict[str, Any]]) -> None:
    step = _Step()
    for j, raw in enumerate(parts):
        _assistant_part(step, raw, f"{where}.parts[{j}]", into)
    step.flush(into)


def _failed(message: UIMessage) -> bool:
    """An answer whose metadata says it failed (the ``ui`` surface's ``status: "failed"``)."""
    metadata = message.metadata
    return isinstance(metadata, dict) and metadata.get("status") == "failed"


def ui_messages_to_chat(messages: Sequence[UIMessage]) -> list[dict[str, Any]]:
    """OpenAI chat messages for ``messages`` (rules in the module docstring)."""
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if message.role == "system":
            texts: list[str] = []
            for j, raw in enumerate(message.parts):
                at = f"{where}.parts[{j}]"
                if _part_type(raw, at) == "text":
                    texts.append(_parse(_Text, raw, at).text)
            out.append({"role": "system", "content": "".join(texts)})
        elif message.role == "user":
            out.append({"role": "user", "content": _user_content(message.parts, where)})
        elif not _failed(message):
            _assistant(message.parts, where, out)
    return out
