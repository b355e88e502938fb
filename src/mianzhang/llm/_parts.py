"""What the part-based encoders (AG-UI, AI SDK UI messages) share. Pure: no clock, no I/O.

Both surfaces stream an answer as *parts*: at most one text or reasoning part is open at a
time (a delta of another kind closes it and opens a new one), and tool calls are announced
with their id and name before their argument text (:class:`~._deltas.ToolCallDeltas`). The
bookkeeping of that is :class:`PartEncoder`; a subclass names the wire events (``_delta``,
``_start_tool``, ``_tool_args``) and closes the open part its own way.
"""

from __future__ import annotations

from typing import Any

from ._deltas import ToolCall, ToolCallDeltas, single_piece
from ._surface import wire_json
from ._types import Chunk

__all__ = ["PartEncoder"]


class PartEncoder:
    """The open part, the cached JSON head of its deltas, and the tool calls of one answer."""

    def __init__(self, tool_id_prefix: str) -> None:
        self._open: tuple[str, str] | None = None  # (kind, id) of the open text/reasoning part
        self._delta_head = ""  # the JSON of a delta event of the open part, up to the delta
        self._tools = ToolCallDeltas(tool_id_prefix)

    # -- the subclass's wire events ------------------------------------------------------------
    def _delta(self, kind: str, delta: str) -> list[dict[str, Any]]:
        """Events for ``delta`` of ``kind`` (``"text"``/``"reasoning"``), opening its part."""
        raise NotImplementedError

    def _start_tool(self, call: ToolCall) -> list[dict[str, Any]]:
        """Events announcing ``call`` (closing the open part first)."""
        raise NotImplementedError

    def _tool_args(self, call: ToolCall, text: str) -> dict[str, Any]:
        """The event carrying argument ``text`` of ``call``."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------
    def _continued(self, chunk: Chunk) -> str | None:
        """The hot path: the wire data of ``chunk`` when it only continues the open part (the
        cached head plus the piece, no dict built); ``None`` otherwise."""
        if self._open is None:
            return None
        piece = single_piece(chunk, self._open[0])
        return f"{self._delta_head}{wire_json(piece)}}}" if piece else None

    def _cache_delta_head(self, head: dict[str, Any]) -> None:
        """Remember the JSON of ``head`` (a delta event without its ``delta``) for
        :meth:`_continued`."""
        self._delta_head = wire_json(head)[:-1] + ',"delta":'

    def _token(self, chunk: Chunk) -> list[dict[str, Any]]:
        """Events for one chunk: its reasoning, its text, then its tool-call deltas."""
        out: list[dict[str, Any]] = []
        if chunk.reasoning:
            out += self._delta("reasoning", chunk.reasoning)
        if chunk.text:
            out += self._delta("text", chunk.text)
        for call in chunk.tool_calls or ():
            out += self._tool_delta(call)
        return out

    def _tool_delta(self, delta: object) -> list[dict[str, Any]]:
        added = self._tools.add(delta)
        if added is None:
            return []
        call, started, arguments = added
        out = self._start_tool(call) if started else []
        if arguments:
            out.append(self._tool_args(call, arguments))
        return out

    def _start_unstarted_tools(self) -> list[dict[str, Any]]:
        """At the end: announce the calls whose name never came, with their argument text."""
        out: list[dict[str, Any]] = []
        for call in self._tools.unstarted():
            out += self._start_tool(call)
            if call.text:
                out.append(self._tool_args(call, call.text))
        return out
