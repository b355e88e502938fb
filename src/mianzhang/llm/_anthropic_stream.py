"""Messages API stream events -> the gateway's :class:`~mianzhang.llm.Chunk` objects. No I/O.

:class:`MessagesStreamParser` reads one upstream stream, event by event, per the tables of
:mod:`._anthropic_tables`:

* ``text`` blocks -> ``Chunk.text``; ``thinking`` blocks -> ``Chunk.reasoning``
  (``signature_delta`` and ``redacted_thinking`` carry no text and are dropped);
* ``tool_use`` blocks -> OpenAI tool-call deltas: the block's start gives
  ``{index, id, type: "function", function: {name, arguments: ""}}``, each
  ``input_json_delta`` ``{index, function: {arguments: partial_json}}``; ``index`` counts the
  message's tool_use blocks from 0, so it is stable whatever text or thinking interleaves;
* ``message_start`` and ``message_delta`` usage -> ``Chunk.usage`` (prompt tokens include
  cache reads and writes, as OpenAI's ``prompt_tokens`` do; output tokens are cumulative);
* ``message_delta.stop_reason`` -> ``Chunk.finish_reason`` (:data:`FINISH_REASONS`), in one
  chunk with the usage;
* ``error`` -> :class:`~mianzhang.UpstreamStreamError` with the upstream's error type (and the
  status it stands for, so overloaded and rate-limit errors are retryable);
* ``ping``, ``content_block_stop``, citations and event types added to the API later ->
  nothing (Anthropic's versioning policy: clients ignore what they do not know).

Each data payload must be a JSON object (else :class:`~mianzhang.UpstreamProtocolError`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from .._errors import UpstreamProtocolError, UpstreamStreamError
from ._anthropic_tables import finish_reason_for, status_for_error_type
from ._types import Chunk, Usage

__all__ = ["MessagesStreamParser"]

Event = dict[str, Any]


def _prompt_tokens(usage: dict[str, Any]) -> int | None:
    if not isinstance(usage.get("input_tokens"), int):
        return None
    parts = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return sum(_int(usage.get(p), 0) for p in parts)


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) else default


class MessagesStreamParser:
    """Parses one Messages API stream (see the module docstring).

    ``finished`` turns true at the ``message_delta`` carrying a ``stop_reason``, ``done`` at
    ``message_stop``.
    """

    def __init__(self) -> None:
        self.finished = False
        self.done = False
        self._prompt = 0
        self._output = 0
        self._tools: dict[int, int] = {}  # block index -> OpenAI tool-call index
        self._handlers: dict[str, Callable[[Event], list[Chunk]]] = {
            "message_start": self._message_start,
            "content_block_start": self._block_start,
            "content_block_delta": self._block_delta,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
            "error": self._error,
        }

    def feed(self, event: str | None, data: str) -> list[Chunk]:
        """The chunks of one SSE event (``event`` name, ``data`` text)."""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            raise UpstreamProtocolError(
                f"upstream sent an event that is not a JSON object: {data[:100]!r}"
            )
        kind = obj.get("type") or event
        handler = self._handlers.get(str(kind))
        return handler(obj) if handler is not None else []

    def _usage(self) -> Usage:
        return Usage(self._prompt, self._output)

    def _message_start(self, obj: Event) -> list[Chunk]:
        message = obj.get("message")
        usage = message.get("usage") if isinstance(message, dict) else None
        if isinstance(usage, dict):
            self._prompt = _prompt_tokens(usage) or 0
            output = usage.get("output_tokens")
            self._output = output if isinstance(output, int) else 0
        return []

    def _block_start(self, obj: Event) -> list[Chunk]:
        block = obj.get("content_block")
        if not isinstance(block, dict):
            return []
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            return [Chunk(text=str(block["text"]))]
        if kind == "thinking" and block.get("thinking"):
            return [Chunk(reasoning=str(block["thinking"]))]
        if kind != "tool_use":
            return []
        index = len(self._tools)
        self._tools[_int(obj.get("index"), -1 - index)] = index
        tool_input = block.get("input")
        arguments = orjson.dumps(tool_input).decode() if tool_input else ""
        function = {"name": block.get("name"), "arguments": arguments}
        call = {"index": index, "id": block.get("id"), "type": "function", "function": function}
        return [Chunk(tool_calls=[call])]

    def _block_delta(self, obj: Event) -> list[Chunk]:
        delta = obj.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [Chunk(text=str(delta["text"]))]
        if kind == "thinking_delta" and delta.get("thinking"):
            return [Chunk(reasoning=str(delta["thinking"]))]
        if kind == "input_json_delta" and delta.get("partial_json"):
            index = self._tools.get(_int(obj.get("index"), -1))
            if index is not None:
                function = {"arguments": str(delta["partial_json"])}
                return [Chunk(tool_calls=[{"index": index, "function": function}])]
        return []

    def _message_delta(self, obj: Event) -> list[Chunk]:
        usage = obj.get("usage")
        if isinstance(usage, dict):
            prompt = _prompt_tokens(usage)
            if prompt is not None:
                self._prompt = prompt
            if isinstance(usage.get("output_tokens"), int):
                self._output = usage["output_tokens"]
        delta = obj.get("delta")
        stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if stop_reason is None or self.finished:
            return []
        self.finished = True
        return [Chunk(finish_reason=finish_reason_for(str(stop_reason)), usage=self._usage())]

    def _message_stop(self, obj: Event) -> list[Chunk]:
        self.done = True
        if self.finished:
            return []
        self.finished = True  # a message_stop without a stop_reason: an ordinary end
        return [Chunk(finish_reason="stop", usage=self._usage())]

    def _error(self, obj: Event) -> list[Chunk]:
        error = obj.get("error")
        error = error if isinstance(error, dict) else {}
        error_type = str(error.get("type") or "api_error")
        message = str(error.get("message") or error_type)
        raise UpstreamStreamError(
            error_type,
            f"upstream error in stream: {message} ({error_type})",
            status_code=status_for_error_type(error_type),
        )
