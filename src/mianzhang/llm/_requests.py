"""Request bodies of the gateway's HTTP API, validated before anything streams.

Parsing is strict where the gateway acts on a field (``model``, ``messages``, ``stream``,
``max_tokens``, ...) and permissive elsewhere: other OpenAI parameters (``temperature``,
``tools``, ``seed``, ...) are passed on to the upstream unchanged. Every problem becomes an
:class:`~mianzhang.InvalidLLMRequest` naming the parameter, answered as HTTP 400 in OpenAI's
error shape.

Every output-token limit (``max_tokens``, ``max_completion_tokens``, ``max_output_tokens``,
Anthropic's ``max_tokens``) is at most :data:`MAX_OUTPUT_TOKENS`: a larger one is a 400, not
a generation left to run until its upstream stops it.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from .._errors import InvalidLLMRequest
from ._responses_input import responses_input_to_messages
from ._responses_tools import ResponsesTools
from ._types import ChatRequest

__all__ = [
    "MAX_OUTPUT_TOKENS",
    "ChatCompletionBody",
    "GenerationBody",
    "ResponsesBody",
    "json_object",
    "parse_body",
]

MAX_OUTPUT_TOKENS: Final = 1_000_000
"""The largest output-token limit a request may ask for (far above any model's own)."""

B = TypeVar("B", bound=BaseModel)

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# parameters the gateway consumes itself; everything else goes upstream as given
_GATEWAY_ONLY = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "background",
        "max_tokens",
        "max_completion_tokens",
        "n",
    }
)


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: Any = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionBody(BaseModel):
    """``POST /v1/chat/completions``; ``background`` is mianzhang's extension (keep generating
    when every reader is gone)."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = Field(default=False, strict=True)
    stream_options: _StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    n: int = Field(default=1, ge=1, le=1)
    background: bool = Field(default=False, strict=True)

    def chat_request(self) -> ChatRequest:
        for i, message in enumerate(self.messages):
            try:
                parsed = _Message.model_validate(message)
            except ValidationError:
                raise InvalidLLMRequest(
                    f"messages[{i}] must be an object with a role", param=f"messages[{i}]"
                ) from None
            if parsed.role not in _ROLES:
                raise InvalidLLMRequest(
                    f"messages[{i}].role {parsed.role!r} is not supported",
                    param=f"messages[{i}].role",
                )
        params = {k: v for k, v in (self.model_extra or {}).items() if k not in _GATEWAY_ONLY}
        return ChatRequest(
            messages=self.messages,
            max_tokens=self.max_completion_tokens or self.max_tokens,
            params=params,
        )

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ResponsesBody(ResponsesTools):
    """``POST /v1/responses``: text input and output, function tools (``tools``,
    ``tool_choice``, ``parallel_tool_calls``: ``_responses_tools.py``), ``function_call`` and
    ``function_call_output`` input items (``_responses_input.py``)."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: str | list[Any]
    instructions: str | None = None
    stream: bool = Field(default=False, strict=True)
    background: bool = Field(default=False, strict=True)
    max_output_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    temperature: float | None = None
    top_p: float | None = None
    metadata: dict[str, str] | None = None

    def chat_request(self) -> ChatRequest:
        params: dict[str, Any] = self.chat_tool_params()
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.top_p is not None:
            params["top_p"] = self.top_p
        return ChatRequest(
            messages=responses_input_to_messages(self.input, self.instructions),
            max_tokens=self.max_output_tokens,
            params=params,
        )

    def echo_params(self) -> dict[str, Any]:
        """The request fields echoed in the response object."""
        return {
            "instructions": self.instructions,
            "max_output_tokens": self.max_output_tokens,
            "temperature": 1.0 if self.temperature is None else self.temperature,
            "top_p": 1.0 if self.top_p is None else self.top_p,
            "metadata": self.metadata or {},
            **self.echo_tool_params(),
        }


class GenerationBody(BaseModel):
    """``POST /v1/llm/generations``: a generation for the native event stream."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    temperature: float | None = None
    background: StrictBool = False

    def chat_request(self) -> ChatRequest:
        as_chat = ChatCompletionBody(messages=self.messages, max_tokens=self.max_tokens)
        request = as_chat.chat_request()
        if self.temperature is not None:
            request.params["temperature"] = self.temperature
        return request


def json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` parsed as a JSON object; :class:`InvalidLLMRequest` if it is not JSON or not an
    object."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidLLMRequest("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidLLMRequest("the request body must be a JSON object")
    return data


def parse_body(raw: bytes, model: type[B]) -> B:
    """``raw`` JSON validated as ``model``; :class:`InvalidLLMRequest` naming the first
    offending parameter otherwise."""
    data = json_object(raw)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidLLMRequest(f"{param}: {first['msg']}", param=param) from None
