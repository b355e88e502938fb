"""The ``chat`` surface: ``chat.completion.chunk`` payloads, and ``chat.completion``.

:class:`ChatChunkEncoder` (a :class:`~mianzhang.llm.SurfaceEncoder`) turns gateway events into
the ``data:`` payloads of an OpenAI stream, in OpenAI's order: the first delta carries
``role: "assistant"``, the last choice chunk ``finish_reason``, then (with ``include_usage``,
the option of the request that started the generation) one chunk with ``choices: []`` and
``usage``, then ``[DONE]`` (from :meth:`~ChatChunkEncoder.end`). A failure becomes
``{"error": {...}}`` and a cancellation the same with code ``cancelled``, each followed by
``[DONE]``. Reasoning text of other providers goes in ``delta.reasoning_content`` (the field
vLLM and DeepSeek use).

Chunks of an OpenAI-compatible upstream are passed through as their original JSON text;
chunks of other providers are built here with orjson. The gateway always asks the upstream for
usage (to count tokens exactly); what that adds is removed again when the client did not ask:
the usage-only chunk, and the ``"usage":null`` member OpenAI appends to every chunk (stripped
only at the end of the JSON text, where OpenAI puts it, so the rest stays byte for byte).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .._errors import GenerationCancelled, LLMError
from ._openai_errors import error_payload
from ._surface import SurfaceContext, WireEvent, wire_json
from ._types import Cancelled, Chunk, Failed, Finished, GenEvent, Started, Token, Usage

__all__ = ["CHAT", "DONE", "ChatChunkEncoder", "ChatCompletionCollector", "ChatSurface"]

DONE = "[DONE]"
_NULL_USAGE = ',"usage":null}'


class ChatChunkEncoder:
    """Encodes the events of one generation as chat completion stream payloads (strings)."""

    __slots__ = (
        "_finish_sent",
        "_include_usage",
        "_prefix",
        "_role_sent",
        "_usage_sent",
        "completion_id",
    )

    def __init__(
        self, *, completion_id: str, model: str, created: int, include_usage: bool = False
    ) -> None:
        self.completion_id = completion_id
        self._include_usage = include_usage
        self._role_sent = False
        self._finish_sent = False
        self._usage_sent = False
        head: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
        }
        # the JSON of the fixed fields, without the closing brace: chunks append to it
        self._prefix = wire_json(head)[:-1]

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        usage = ',"usage":null' if self._include_usage else ""
        return f'{self._prefix},"choices":[{wire_json(choice)}]{usage}}}'

    def _usage_chunk(self, usage: Usage) -> str:
        return f'{self._prefix},"choices":[],"usage":{wire_json(usage.to_openai())}}}'

    def _token(self, chunk: Chunk) -> list[WireEvent]:
        if chunk.raw is not None:
            return self._raw(chunk, chunk.raw)
        if not (
            chunk.text or chunk.reasoning or chunk.tool_calls or chunk.finish_reason is not None
        ):
            return []
        delta: dict[str, Any] = {}
        if not self._role_sent:
            delta["role"] = "assistant"
            self._role_sent = True
        delta["content"] = chunk.text
        if chunk.reasoning:
            delta["reasoning_content"] = chunk.reasoning
        if chunk.tool_calls:
            delta["tool_calls"] = chunk.tool_calls
        if chunk.finish_reason is not None:
            self._finish_sent = True
        return [(None, self._chunk(delta, chunk.finish_reason))]

    def _raw(self, chunk: Chunk, raw: str) -> list[WireEvent]:
        """An OpenAI upstream's chunk, passed through (see the module docstring)."""
        usage_only = (
            chunk.usage is not None
            and not chunk.is_token
            and chunk.finish_reason is None
            and chunk.role is None
        )
        if usage_only and not self._include_usage:
            return []
        if chunk.usage is not None and self._include_usage:
            self._usage_sent = True
        if chunk.role is not None or chunk.is_token:
            self._role_sent = True
        if chunk.finish_reason is not None:
            self._finish_sent = True
        if not self._include_usage and raw.endswith(_NULL_USAGE):
            # the gateway asked the upstream for usage, the client did not: drop the
            # `"usage":null` that include_usage adds, as OpenAI does without it
            raw = raw[: -len(_NULL_USAGE)] + "}"
        return [(None, raw)]

    def _finished(self, event: Finished) -> list[WireEvent]:
        out: list[WireEvent] = []
        if not self._finish_sent:
            delta: dict[str, Any] = {} if self._role_sent else {"role": "assistant"}
            out.append((None, self._chunk(delta, event.finish_reason)))
            self._finish_sent = self._role_sent = True
        if self._include_usage and not self._usage_sent:
            out.append((None, self._usage_chunk(event.usage)))
            self._usage_sent = True
        return out

    def encode(self, event: GenEvent) -> list[WireEvent]:
        """The payloads ``event`` adds to the stream (possibly none)."""
        if isinstance(event, Token):
            return self._token(event.chunk)
        if isinstance(event, Started):
            return []
        if isinstance(event, Finished):
            return self._finished(event)
        if isinstance(event, Cancelled):
            return [(None, wire_json(error_payload(GenerationCancelled(event.reason))))]
        assert isinstance(event, Failed)
        return [(None, wire_json(error_payload(event.error)))]

    def end(self) -> list[WireEvent]:
        """``[DONE]``, after the terminal event."""
        return [(None, DONE)]


class ChatSurface:
    """The ``chat`` surface (options: ``include_usage``)."""

    name = "chat"
    media_type = "text/event-stream"
    headers: Mapping[str, str] = MappingProxyType({})

    def encoder(self, context: SurfaceContext) -> ChatChunkEncoder:
        return ChatChunkEncoder(
            completion_id=context.stream_id,
            model=context.model,
            created=context.created,
            include_usage=bool(context.options.get("include_usage", False)),
        )


CHAT = ChatSurface()


class ChatCompletionCollector:
    """Builds the ``chat.completion`` object of ``stream: false`` from the same events.

    Text is concatenated, tool-call deltas merged by index (``function.arguments`` appended).
    :meth:`result` raises the generation's error if it failed.
    """

    def __init__(self, *, completion_id: str, model: str, created: int) -> None:
        self.completion_id = completion_id
        self.model = model
        self.created = created
        self._text: list[str] = []
        self._tools: dict[int, dict[str, Any]] = {}
        self._finished: Finished | None = None
        self._error: LLMError | None = None

    def add(self, event: GenEvent) -> None:
        if isinstance(event, Token):
            chunk = event.chunk
            if chunk.text:
                self._text.append(chunk.text)
            for call in chunk.tool_calls or ():
                self._merge_tool_call(call)
        elif isinstance(event, Finished):
            self._finished = event
        elif isinstance(event, Failed):
            self._error = event.error

    def _merge_tool_call(self, call: dict[str, Any]) -> None:
        index = call.get("index", len(self._tools))
        into = self._tools.setdefault(
            index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if call.get("id"):
            into["id"] = call["id"]
        if call.get("type"):
            into["type"] = call["type"]
        function = call.get("function") or {}
        if function.get("name"):
            into["function"]["name"] += function["name"]
        if function.get("arguments"):
            into["function"]["arguments"] += function["arguments"]

    def result(self) -> dict[str, Any]:
        """The completion object; raises the error of a failed generation."""
        if self._error is not None:
            raise self._error
        if self._finished is None:
            raise RuntimeError("the generation did not finish")
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self._text)}
        if self._tools:
            message["tool_calls"] = [self._tools[i] for i in sorted(self._tools)]
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self._finished.finish_reason,
                }
            ],
            "usage": self._finished.usage.to_openai(),
        }
