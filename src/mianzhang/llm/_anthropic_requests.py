"""Anthropic Messages API request bodies: ``POST /v1/messages`` and ``.../count_tokens``.

:func:`parse_messages` and :func:`parse_count_tokens` validate a body completely before
anything streams, as Anthropic's API does: ``model``, ``max_tokens`` (``/v1/messages``; at
most ``MAX_OUTPUT_TOKENS``, as on every route) and a non-empty ``messages`` are required;
every content block is checked against its kind (text, image, document, tool_use,
tool_result, thinking, redacted_thinking); unknown top-level fields
are refused ("Extra inputs are not permitted"), except a few hints that have no effect through
a gateway (:data:`IGNORED_FIELDS`). Every problem is an :class:`~mianzhang.InvalidLLMRequest`
whose message names the field the way Anthropic does (``max_tokens: Field required``), for a
400 ``invalid_request_error`` (rendered by :mod:`._anthropic_errors`).

The validated request converts to the gateway's :class:`~mianzhang.llm.ChatRequest`
(OpenAI-shaped messages and parameters) in :mod:`._anthropic_convert`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic import ValidationError as _ValidationError

from .._errors import InvalidLLMRequest
from ._anthropic_tables import ASSISTANT_BLOCKS, USER_BLOCKS
from ._requests import MAX_OUTPUT_TOKENS, json_object

__all__ = [
    "IGNORED_FIELDS",
    "CountTokensBody",
    "MessagesBody",
    "MessagesRequest",
    "parse_count_tokens",
    "parse_messages",
]

M = TypeVar("M", bound=BaseModel)

IGNORED_FIELDS: Final = frozenset(
    {
        "cache_control",
        "service_tier",
        "inference_geo",
        "speed",
        "diagnostics",
        "workspace_id",
        "user_profile_id",
    }
)
"""Top-level fields accepted and not acted on: caching, capacity and routing hints of
Anthropic's own service, meaningless for another upstream (the content is unchanged)."""


# -- content blocks (extra fields such as ``cache_control`` or ``citations`` are accepted) ------
class _Block(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextBlock(_Block):
    type: Literal["text"]
    text: StrictStr


class Base64Source(_Block):
    type: Literal["base64"]
    media_type: StrictStr
    data: StrictStr


class URLSource(_Block):
    type: Literal["url"]
    url: StrictStr


class PlainTextSource(_Block):
    type: Literal["text"]
    media_type: Literal["text/plain"]
    data: StrictStr


class ImageBlock(_Block):
    type: Literal["image"]
    source: Base64Source | URLSource


class DocumentBlock(_Block):
    type: Literal["document"]
    source: Base64Source | PlainTextSource | URLSource
    title: StrictStr | None = None
    context: StrictStr | None = None


class ToolUseBlock(_Block):
    type: Literal["tool_use"]
    id: StrictStr
    name: StrictStr
    input: dict[str, Any]


class ToolResultBlock(_Block):
    type: Literal["tool_result"]
    tool_use_id: StrictStr
    content: StrictStr | list[TextBlock | ImageBlock | DocumentBlock] | None = None
    is_error: StrictBool = False


class ThinkingBlock(_Block):
    type: Literal["thinking"]
    thinking: StrictStr
    signature: StrictStr


class RedactedThinkingBlock(_Block):
    type: Literal["redacted_thinking"]
    data: StrictStr


Block = (
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
)

_BLOCKS: Final[dict[str, type[BaseModel]]] = {
    "text": TextBlock,
    "image": ImageBlock,
    "document": DocumentBlock,
    "tool_use": ToolUseBlock,
    "tool_result": ToolResultBlock,
    "thinking": ThinkingBlock,
    "redacted_thinking": RedactedThinkingBlock,
}
_SOURCES: Final[dict[str, dict[str, type[BaseModel]]]] = {
    "image": {"base64": Base64Source, "url": URLSource},
    "document": {"base64": Base64Source, "text": PlainTextSource, "url": URLSource},
}
_RESULT_BLOCKS: Final = {"text": 1, "image": 1, "document": 1}  # what a tool_result may hold
_ROLE_BLOCKS: Final[dict[str, Mapping[str, object]]] = {
    "user": USER_BLOCKS,
    "assistant": ASSISTANT_BLOCKS,
}


# -- tools, tool choice, thinking ---------------------------------------------------------------
class ToolDef(BaseModel):
    """A custom (client) tool. Anthropic's server tools (``web_search_…``, ``bash_…``) run
    inside Anthropic's service and cannot be offered through another upstream."""

    model_config = ConfigDict(extra="allow")
    type: Literal["custom"] | None = None
    name: StrictStr = Field(min_length=1)
    description: StrictStr | None = None
    input_schema: dict[str, Any]
    strict: StrictBool | None = None


class ToolChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["auto", "any", "tool", "none"]
    name: StrictStr | None = None
    disable_parallel_tool_use: StrictBool = False


class Thinking(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: StrictInt | None = Field(default=None, ge=1024)
    display: Literal["summarized", "omitted"] | None = None


class _Metadata(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: StrictStr | None = None


class _OutputFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class _OutputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: _OutputFormat | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: Any


# -- bodies -------------------------------------------------------------------------------------
class CountTokensBody(BaseModel):
    """``POST /v1/messages/count_tokens``."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    system: Any = None  # a string or text blocks: checked by _system
    tools: list[Any] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    output_config: _OutputConfig | None = None
    cache_control: Any = None
    speed: Any = None


class MessagesBody(CountTokensBody):
    """``POST /v1/messages``. ``background`` is mianzhang's extension (keep generating when
    every reader is gone), as on the OpenAI routes."""

    max_tokens: StrictInt = Field(ge=1, le=MAX_OUTPUT_TOKENS)
    stop_sequences: list[StrictStr] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: StrictInt | None = Field(default=None, ge=0)
    metadata: _Metadata | None = None
    stream: StrictBool = False
    background: StrictBool = False
    service_tier: Any = None
    inference_geo: Any = None
    diagnostics: Any = None
    workspace_id: Any = None
    user_profile_id: Any = None


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    """A validated body with its content resolved: each turn's blocks (a string content is
    one text block), the system prompt (``str``, or text blocks) and the tools."""

    body: CountTokensBody
    turns: list[tuple[Literal["user", "assistant"], list[Block]]]
    system: str | list[TextBlock] | None
    tools: list[ToolDef]

    @property
    def max_tokens(self) -> int | None:
        return self.body.max_tokens if isinstance(self.body, MessagesBody) else None


# -- validation ---------------------------------------------------------------------------------
def _invalid(exc: _ValidationError, prefix: str) -> InvalidLLMRequest:
    first = exc.errors()[0]
    param = ".".join([p for p in (prefix, *map(str, first["loc"])) if p])
    message = first["msg"]
    return InvalidLLMRequest(f"{param}: {message}" if param else message, param=param or None)


def _validate(model: type[M], value: Any, loc: str) -> M:
    try:
        return model.model_validate(value)
    except _ValidationError as exc:
        raise _invalid(exc, loc) from None


def _tag(value: Any, allowed: Mapping[str, object], loc: str) -> str:
    """The ``type`` of a tagged object, checked against ``allowed``."""
    if not isinstance(value, dict):
        raise InvalidLLMRequest(f"{loc}: Input should be a valid dictionary or object", param=loc)
    tag = value.get("type")
    if tag not in allowed:
        expected = ", ".join(repr(t) for t in allowed)
        raise InvalidLLMRequest(
            f"{loc}.type: Input tag {tag!r} does not match any of the expected tags: {expected}",
            param=f"{loc}.type",
        )
    return str(tag)


def _block(value: Any, allowed: Mapping[str, object], loc: str) -> Block:
    """One content block, its nested parts checked first so an error names the exact field
    (never a member of a union)."""
    kind = _tag(value, allowed, loc)
    if kind in _SOURCES:
        sources = _SOURCES[kind]
        source = value.get("source")
        if source is None:
            raise InvalidLLMRequest(f"{loc}.source: Field required", param=f"{loc}.source")
        _validate(sources[_tag(source, sources, f"{loc}.source")], source, f"{loc}.source")
    if kind == "tool_result":
        content = value.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                _block(part, _RESULT_BLOCKS, f"{loc}.content.{j}")
        elif content is not None and not isinstance(content, str):
            raise InvalidLLMRequest(
                f"{loc}.content: Input should be a valid string or a list of content blocks",
                param=f"{loc}.content",
            )
    return cast(Block, _validate(_BLOCKS[kind], value, loc))


def _content(value: Any, role: str, loc: str) -> list[Block]:
    if isinstance(value, str):
        return [TextBlock(type="text", text=value)]
    if not isinstance(value, list):
        raise InvalidLLMRequest(
            f"{loc}: Input should be a valid string or a list of content blocks", param=loc
        )
    if not value:
        raise InvalidLLMRequest(f"{loc}: List should have at least 1 item", param=loc)
    return [_block(b, _ROLE_BLOCKS[role], f"{loc}.{j}") for j, b in enumerate(value)]


def _system(value: Any) -> str | list[TextBlock] | None:
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise InvalidLLMRequest(
            "system: Input should be a valid string or a list of text blocks", param="system"
        )
    blocks: list[TextBlock] = []
    for j, b in enumerate(value):
        blocks.append(cast(TextBlock, _block(b, {"text": 1}, f"system.{j}")))
    return blocks


def _tools(value: list[Any] | None) -> list[ToolDef]:
    tools: list[ToolDef] = []
    for i, tool in enumerate(value or ()):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind not in (None, "custom"):
            raise InvalidLLMRequest(
                f"tools.{i}.type: {kind!r} tools run inside Anthropic's service and are not"
                " supported by this gateway (only custom tools with an input_schema)",
                param=f"tools.{i}.type",
            )
        tools.append(_validate(ToolDef, tool, f"tools.{i}"))
    return tools


def _check_rules(body: CountTokensBody) -> None:
    """Cross-field rules Anthropic enforces."""
    choice = body.tool_choice
    if choice is not None and choice.type == "tool" and not choice.name:
        raise InvalidLLMRequest("tool_choice.name: Field required", param="tool_choice.name")
    thinking = body.thinking
    if thinking is not None and thinking.type == "enabled":
        if thinking.budget_tokens is None:
            raise InvalidLLMRequest(
                "thinking.budget_tokens: Field required", param="thinking.budget_tokens"
            )
        if isinstance(body, MessagesBody) and thinking.budget_tokens >= body.max_tokens:
            raise InvalidLLMRequest(
                "max_tokens: must be greater than thinking.budget_tokens", param="max_tokens"
            )


def _resolve(body: CountTokensBody) -> MessagesRequest:
    _check_rules(body)
    turns = [
        (m.role, _content(m.content, m.role, f"messages.{i}.content"))
        for i, m in enumerate(body.messages)
    ]
    return MessagesRequest(body, turns, _system(body.system), _tools(body.tools))


def _parse(raw: bytes | Mapping[str, Any], model: type[CountTokensBody]) -> MessagesRequest:
    data = dict(raw) if isinstance(raw, Mapping) else json_object(raw)
    return _resolve(_validate(model, data, ""))


def parse_messages(raw: bytes | Mapping[str, Any]) -> MessagesRequest:
    """A ``POST /v1/messages`` body (JSON bytes or a parsed object), validated; raises
    :class:`InvalidLLMRequest` naming the first problem."""
    return _parse(raw, MessagesBody)


def parse_count_tokens(raw: bytes | Mapping[str, Any]) -> MessagesRequest:
    """A ``POST /v1/messages/count_tokens`` body, validated like :func:`parse_messages`."""
    return _parse(raw, CountTokensBody)
