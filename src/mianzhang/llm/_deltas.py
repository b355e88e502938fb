"""Chunks as the part-based surfaces (AI SDK UI messages, AG-UI) need them. No I/O.

:func:`single_piece` finds the chunks that only continue the open text or reasoning part (the
hot path of those encoders). :class:`ToolCallDeltas` rebuilds tool calls from OpenAI
tool-call deltas, for surfaces that announce each call with its id and name before streaming
its arguments.

OpenAI streams a call as deltas ``{index, id?, type?, function: {name?, arguments?}}``: the
first with the id and the name, then argument text. A call is *started* once its name is
known; argument text that arrived before is handed over at that moment. Deltas that are not
objects, and fields of the wrong type, are ignored (the upstream's JSON is not trusted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._types import Chunk

__all__ = ["ToolCall", "ToolCallDeltas", "single_piece"]


@dataclass(slots=True)
class ToolCall:
    """One call: its id, its name and its argument text so far."""

    id: str
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    started: bool = False

    @property
    def text(self) -> str:
        return "".join(self.arguments)


def single_piece(chunk: Chunk, kind: str) -> str:
    """The chunk's text (``kind`` ``"text"``) or reasoning (``"reasoning"``) if that is all it
    carries (finish reason and usage aside), else ``""``."""
    if chunk.tool_calls:
        return ""
    if kind == "text":
        return "" if chunk.reasoning else chunk.text
    return "" if chunk.text else chunk.reasoning


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


class ToolCallDeltas:
    """Merges deltas by index; ``id_prefix`` names calls whose delta carried no id."""

    def __init__(self, id_prefix: str) -> None:
        self._prefix = id_prefix
        self._calls: dict[int, ToolCall] = {}

    def add(self, delta: object) -> tuple[ToolCall, bool, str] | None:
        """``(call, started now, argument text to send now)`` for one delta, ``None`` for a
        delta that is not an object. Right after a start the text is all arguments so far."""
        if not isinstance(delta, Mapping):
            return None
        index = delta.get("index")
        index = index if isinstance(index, int) else 0
        function = delta.get("function")
        function = function if isinstance(function, Mapping) else {}
        call = self._calls.get(index)
        if call is None:
            call = ToolCall(_str(delta.get("id")) or f"{self._prefix}{index}")
            self._calls[index] = call
        arguments = _str(function.get("arguments"))
        call.arguments.append(arguments)
        if call.started:
            return call, False, arguments
        call.name += _str(function.get("name"))
        if not call.name:
            return call, False, ""
        call.started = True
        return call, True, call.text

    def unstarted(self) -> list[ToolCall]:
        """Calls whose name never came, now started as ``unknown`` (at the end of a step)."""
        out = []
        for index in sorted(self._calls):
            call = self._calls[index]
            if not call.started:
                call.name, call.started = "unknown", True
                out.append(call)
        return out

    def calls(self) -> list[ToolCall]:
        """Every call, in index order."""
        return [self._calls[i] for i in sorted(self._calls)]

    def __bool__(self) -> bool:
        return bool(self._calls)
