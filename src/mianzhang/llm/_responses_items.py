"""The output items of a streamed Responses API response: message, reasoning, function call.

Each item streams as ``response.output_item.added``, its deltas, its ``.done`` events and
``response.output_item.done``; :class:`~mianzhang.llm.ResponsesEncoder` keeps one item open at a
time (as OpenAI streams them) and numbers the events. Item ids are derived from the stream id
and the item's ``output_index``, so every reader of the same generation sees the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Protocol

from ._surface import WireEvent, wire_json

_DELTA_TAIL = ',"logprobs":[],"type":"response.output_text.delta","sequence_number":'


__all__ = ["Emit", "FunctionCallItem", "MessageItem", "OutputItem", "ReasoningItem", "item_id"]

Emit = Callable[..., WireEvent]
"""``emit(type, **fields)``: one numbered event of the response."""


def item_id(prefix: str, stream_id: str, index: int) -> str:
    """The id of output item ``index`` of stream ``stream_id`` (deterministic)."""
    digest = hashlib.blake2b(f"{stream_id}/{index}".encode(), digest_size=16).hexdigest()
    return f"{prefix}_{digest}"


class OutputItem(Protocol):
    kind: str
    key: object  # what a new piece must match to continue this item (tool-call index)
    status: str

    def opened(self, emit: Emit) -> list[WireEvent]: ...

    def delta(self, piece: Any, emit: Emit) -> list[WireEvent]: ...

    def closed(self, status: str, emit: Emit) -> list[WireEvent]: ...

    def item(self, status: str) -> dict[str, Any]: ...


class MessageItem:
    """An assistant message with one ``output_text`` part."""

    kind = "message"
    key: object = None

    def __init__(self, stream_id: str, index: int) -> None:
        self.id = item_id("msg", stream_id, index)
        self.index = index
        self.status = "in_progress"
        self._text: list[str] = []
        # the JSON of a delta event before its text (as orjson writes the whole object)
        self._delta_head = (
            f'{{"item_id":"{self.id}","output_index":{index},"content_index":0,"delta":'
        )

    def text_delta(self, piece: str, sequence: int) -> WireEvent:
        """The ``response.output_text.delta`` event of ``piece`` (the hot path: no dict)."""
        self._text.append(piece)
        data = f"{self._delta_head}{wire_json(piece)}{_DELTA_TAIL}{sequence}}}"
        return "response.output_text.delta", data

    def _where(self) -> dict[str, Any]:
        return {"item_id": self.id, "output_index": self.index, "content_index": 0}

    def _part(self) -> dict[str, Any]:
        return {
            "type": "output_text",
            "text": "".join(self._text),
            "annotations": [],
            "logprobs": [],
        }

    def item(self, status: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [] if status == "in_progress" and not self._text else [self._part()],
        }

    def opened(self, emit: Emit) -> list[WireEvent]:
        empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [
            emit(
                "response.output_item.added", output_index=self.index, item=self.item("in_progress")
            ),
            emit("response.content_part.added", **self._where(), part=empty),
        ]

    def delta(self, piece: Any, emit: Emit) -> list[WireEvent]:
        self._text.append(piece)
        return [emit("response.output_text.delta", **self._where(), delta=piece, logprobs=[])]

    def closed(self, status: str, emit: Emit) -> list[WireEvent]:
        self.status = status
        where = self._where()
        return [
            emit("response.output_text.done", **where, text="".join(self._text), logprobs=[]),
            emit("response.content_part.done", **where, part=self._part()),
            emit("response.output_item.done", output_index=self.index, item=self.item(status)),
        ]


class ReasoningItem:
    """Reasoning text (``reasoning_text`` content), for models that give it."""

    kind = "reasoning"
    key: object = None

    def __init__(self, stream_id: str, index: int) -> None:
        self.id = item_id("rs", stream_id, index)
        self.index = index
        self.status = "in_progress"
        self._text: list[str] = []

    def item(self, status: str) -> dict[str, Any]:
        content = [{"type": "reasoning_text", "text": "".join(self._text)}] if self._text else []
        return {
            "id": self.id,
            "type": "reasoning",
            "status": status,
            "summary": [],
            "content": [] if status == "in_progress" else content,
        }

    def opened(self, emit: Emit) -> list[WireEvent]:
        item = self.item("in_progress")
        return [emit("response.output_item.added", output_index=self.index, item=item)]

    def delta(self, piece: Any, emit: Emit) -> list[WireEvent]:
        self._text.append(piece)
        where = {"item_id": self.id, "output_index": self.index, "content_index": 0}
        return [emit("response.reasoning_text.delta", **where, delta=piece)]

    def closed(self, status: str, emit: Emit) -> list[WireEvent]:
        self.status = status
        where = {"item_id": self.id, "output_index": self.index, "content_index": 0}
        text = "".join(self._text)
        return [
            emit("response.reasoning_text.done", **where, text=text),
            emit("response.output_item.done", output_index=self.index, item=self.item(status)),
        ]


class FunctionCallItem:
    """One tool call, from the chat tool-call deltas of one ``index``."""

    kind = "function_call"

    def __init__(self, stream_id: str, index: int, call: dict[str, Any]) -> None:
        self.id = item_id("fc", stream_id, index)
        self.index = index
        self.key: object = call.get("index", 0)
        self.status = "in_progress"
        function = call.get("function") or {}
        self.call_id = str(call.get("id") or item_id("call", stream_id, index))
        self.name = str(function.get("name") or "")
        self._arguments: list[str] = []

    def item(self, status: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function_call",
            "status": status,
            "arguments": "".join(self._arguments),
            "call_id": self.call_id,
            "name": self.name,
        }

    def opened(self, emit: Emit) -> list[WireEvent]:
        item = self.item("in_progress")
        return [emit("response.output_item.added", output_index=self.index, item=item)]

    def delta(self, piece: Any, emit: Emit) -> list[WireEvent]:
        function = piece.get("function") or {}
        if function.get("name") and not self.name:
            self.name = str(function["name"])
        arguments = function.get("arguments")
        if not arguments:
            return []
        self._arguments.append(str(arguments))
        where = {"item_id": self.id, "output_index": self.index}
        return [emit("response.function_call_arguments.delta", **where, delta=arguments)]

    def closed(self, status: str, emit: Emit) -> list[WireEvent]:
        self.status = status
        where = {"item_id": self.id, "output_index": self.index}
        arguments = "".join(self._arguments)
        return [
            emit("response.function_call_arguments.done", **where, arguments=arguments),
            emit("response.output_item.done", output_index=self.index, item=self.item(status)),
        ]
