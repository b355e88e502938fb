"""The UIMessage a generation's UI message stream builds, computed on the server.

:class:`UIMessageFold` applies UI message chunks to a message the way the AI SDK's
``processUIMessageStream`` (``ai`` 7) does for every chunk type the ``ui`` surface writes, so
the message the server saves in a chat (:func:`final_ui_message`) equals the one ``useChat``
shows (the e2e tests compare the two): ``start`` sets the id and merges ``messageMetadata``;
``start-step`` adds a ``step-start`` part; text parts are ``{type: "text", text, state}``,
reasoning parts ``{type: "reasoning", id, text, state}``; a tool call is a ``tool-<name>`` part
(``input-streaming``, then ``input-available`` with its input, or ``output-error`` for input
that is not JSON); ``finish`` and ``message-metadata`` merge metadata deeply (arrays
replaced); ``error``, ``abort``, ``finish-step`` change no part. A ``data-*`` chunk is the
SDK's data part: a transient one (the surface's ``data-progress``) is not stored; another
replaces the ``data`` of the part of its type and ``id`` if there is one, else is added as a
part (the chunk as it came). Keys the SDK leaves ``undefined`` are left out (they do not
survive JSON either).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any

import orjson

from ..log import EventLog
from ._canonical import StartRecord, parse_event, record_from_meta
from ._surface import SurfaceContext
from ._types import Cancelled, Failed, Finished, Timings, Usage
from ._ui_surface import UIMessageStreamEncoder

__all__ = ["UIMessageFold", "final_ui_message", "merge_metadata"]

_PAGE = 1000


def merge_metadata(base: Any, overrides: Any) -> Any:
    """The SDK's ``mergeObjects``: a deep merge of objects, anything else replaced."""
    if overrides is None:
        return base
    if not isinstance(base, dict) or not isinstance(overrides, dict):
        return overrides
    out = dict(base)
    for key, value in overrides.items():
        if key in ("__proto__", "constructor", "prototype"):
            continue
        old = out.get(key)
        both = isinstance(old, dict) and isinstance(value, dict)
        out[key] = merge_metadata(old, value) if both else value
    return out


class UIMessageFold:
    """Builds one assistant UIMessage from UI message chunks (see the module docstring)."""

    def __init__(self, message_id: str = "") -> None:
        self.message: dict[str, Any] = {"id": message_id, "role": "assistant", "parts": []}
        self._open: dict[str, dict[str, Any]] = {}  # text/reasoning part id -> part
        self._tools: dict[str, dict[str, Any]] = {}  # tool call id -> part
        self._tool_text: dict[str, str] = {}

    def _merge(self, metadata: Any) -> None:
        if metadata is not None:
            merged = merge_metadata(self.message.get("metadata"), metadata)
            self.message["metadata"] = merged

    def add(self, chunk: dict[str, Any]) -> None:
        """Apply one chunk."""
        kind = chunk.get("type")
        if not isinstance(kind, str):
            return
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, chunk)
        elif kind.startswith("tool-"):
            self._tool(kind, chunk)
        elif kind.startswith("data-") and not chunk.get("transient"):
            self._data(chunk)

    def _data(self, chunk: dict[str, Any]) -> None:
        parts: list[dict[str, Any]] = self.message["parts"]
        part_id = chunk.get("id")
        same = (p for p in parts if p["type"] == chunk["type"] and p.get("id") == part_id)
        existing = next(same, None) if part_id is not None else None
        if existing is None:
            parts.append(dict(chunk))
        else:
            existing["data"] = chunk.get("data")

    def _start(self, chunk: dict[str, Any]) -> None:
        if chunk.get("messageId") is not None:
            self.message["id"] = chunk["messageId"]
        self._merge(chunk.get("messageMetadata"))

    def _metadata(self, chunk: dict[str, Any]) -> None:
        self._merge(chunk.get("messageMetadata"))

    def _step(self, chunk: dict[str, Any]) -> None:
        self.message["parts"].append({"type": "step-start"})

    def _part_start(self, chunk: dict[str, Any]) -> None:
        if chunk["type"] == "reasoning-start":
            part = {"type": "reasoning", "id": chunk["id"], "text": "", "state": "streaming"}
        else:
            part = {"type": "text", "text": "", "state": "streaming"}
        self._open[chunk["id"]] = part
        self.message["parts"].append(part)

    def _part_delta(self, chunk: dict[str, Any]) -> None:
        self._open[chunk["id"]]["text"] += chunk["delta"]

    def _part_end(self, chunk: dict[str, Any]) -> None:
        self._open.pop(chunk["id"])["state"] = "done"

    def _tool(self, kind: str, chunk: dict[str, Any]) -> None:
        call_id = chunk["toolCallId"]
        part = self._tools.get(call_id)
        if part is None:
            part = {"type": f"tool-{chunk['toolName']}", "toolCallId": call_id}
            self._tools[call_id] = part
            self.message["parts"].append(part)
        if kind == "tool-input-start":
            part["state"] = "input-streaming"
            self._tool_text[call_id] = ""
        elif kind == "tool-input-delta":
            text = self._tool_text.get(call_id, "") + chunk["inputTextDelta"]
            self._tool_text[call_id] = text
            part["state"] = "input-streaming"
            part["rawInput"] = text  # (the SDK also shows a repaired prefix as ``input``)
        elif kind == "tool-input-available":
            part.pop("rawInput", None)
            part.update(state="input-available", input=chunk.get("input"))
        elif kind == "tool-input-error":
            part.pop("rawInput", None)
            part.update(state="output-error", input=chunk.get("input"))
            part["errorText"] = chunk.get("errorText", "")


_HANDLERS: dict[str, Callable[[UIMessageFold, dict[str, Any]], None]] = {
    "start": UIMessageFold._start,
    "finish": UIMessageFold._metadata,
    "message-metadata": UIMessageFold._metadata,
    "start-step": UIMessageFold._step,
    "text-start": UIMessageFold._part_start,
    "reasoning-start": UIMessageFold._part_start,
    "text-delta": UIMessageFold._part_delta,
    "reasoning-delta": UIMessageFold._part_delta,
    "text-end": UIMessageFold._part_end,
    "reasoning-end": UIMessageFold._part_end,
}


def _context(stream: str, record: StartRecord) -> SurfaceContext:
    options = record.options if record.surface == "ui" else {}
    started = record.started
    return SurfaceContext(stream, started.model, started.created, options)


async def final_ui_message(log: EventLog, stream: str) -> dict[str, Any] | None:
    """The UIMessage generation ``stream`` built, read from the log (``None`` if the stream
    is gone or is not a generation). A stream that ended without a terminal event gives the
    message a client was left with (the ``ui`` surface's cancelled shape, ``interrupted``)."""
    info = await log.info(stream)
    record = record_from_meta(info.meta) if info is not None else None
    if record is None:
        return None
    encoder = UIMessageStreamEncoder(_context(stream, record))
    fold = UIMessageFold(encoder.message_id)
    ended = False
    async with aclosing(_events(log, stream)) as events:
        async for name, data in events:
            event = parse_event(name, data)
            if event is None or isinstance(event, StartRecord):
                continue
            for _, wire in encoder.encode(event):
                fold.add(orjson.loads(wire))
            if isinstance(event, Finished | Failed | Cancelled):
                ended = True
                break
    if not ended:
        stop = Cancelled("interrupted", Usage(), Timings(None, 0.0, 0), partial=True)
        for _, wire in encoder.encode(stop):
            fold.add(orjson.loads(wire))
    return fold.message


async def _events(log: EventLog, stream: str) -> AsyncGenerator[tuple[str | None, str], None]:
    after: str | None = None
    while True:
        _, events = await log.read(stream, after, limit=_PAGE)
        for event in events:
            yield event.event, event.data
        if len(events) < _PAGE:
            return
        after = events[-1].id
