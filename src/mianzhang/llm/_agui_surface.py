"""AG-UI (the Agent-User Interaction protocol, 1.0) as a surface of generations.

A generation reads as one AG-UI run, camelCase JSON, one event per ``data:`` line::

    RUN_STARTED{threadId, runId}
    REASONING_START / REASONING_MESSAGE_START / _CONTENT / _END / REASONING_END
    TEXT_MESSAGE_START{messageId, role} / TEXT_MESSAGE_CONTENT{delta} / TEXT_MESSAGE_END
    TOOL_CALL_START{toolCallId, toolCallName, parentMessageId} / TOOL_CALL_ARGS / TOOL_CALL_END
    RUN_FINISHED{threadId, runId, usage, outcome?}      or  RUN_ERROR{message, code, usage}

``threadId``/``runId`` come from ``options["thread_id"]``/``["run_id"]`` (the run's input),
defaulting to the stream id; the assistant message id from ``options["message_id"]``,
defaulting to ``{runId}-assistant``. Every text segment of the answer uses that one message
id (``HttpAgent`` appends a ``TEXT_MESSAGE_START`` for a known id to that message) and tool
calls name it as their ``parentMessageId`` (so they attach to it); reasoning segments are
reasoning messages ``{messageId}-reasoning-N``. Tool calls end with ``TOOL_CALL_END`` when
the generation finishes; a run that finishes with tool calls lists them in
``outcome.pendingToolCallIds`` for the front-end to answer.

``@ag-ui/client`` 1.0's verifier rejects ``RUN_FINISHED`` while a message or tool call is
open, so the encoder closes every open one first. A cancelled generation is a
``RUN_FINISHED`` with ``outcome: {"type": "cancelled"}`` (the 1.0 outcome for a run stopped
by whoever runs it); a failed one is ``RUN_ERROR`` (allowed with parts open: only text and
reasoning are closed, an unfinished tool call is not claimed complete). :meth:`end` writes
nothing: AG-UI has no ``[DONE]`` and its client ``JSON.parse``-s every ``data:``.

Resume: AG-UI has none, and ``HttpAgent`` ignores SSE ids. A reader resuming a client that
received the first ``p`` events of a run sends :func:`agui_reopen` of those ``p`` events, then
the events from ``p`` on: the client gets every part exactly once (see :func:`agui_reopen`).

Events are built as plain dicts with orjson rather than through ``ag-ui-protocol``'s pydantic
models (validation on every token would multiply the per-token cost); the tests validate
every event type against those models and run the streams through ``@ag-ui/client``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

import orjson

from .._errors import LLMError
from ._deltas import ToolCall
from ._openai_errors import error_payload
from ._parts import PartEncoder
from ._surface import SurfaceContext, WireEvent, wire_json
from ._types import Cancelled, Failed, Finished, GenEvent, Started, Token, Usage

__all__ = ["AGUI", "AGUI_HEADERS", "AGUIEncoder", "AGUISurface", "agui_reopen"]

AGUI_HEADERS: Final[Mapping[str, str]] = MappingProxyType(
    {"cache-control": "no-cache", "x-accel-buffering": "no"}
)


class AGUIEncoder(PartEncoder):
    """Encodes one generation as one AG-UI run (see the module docstring). Pure."""

    def __init__(self, context: SurfaceContext) -> None:
        options = context.options
        self.thread_id = str(options.get("thread_id") or context.stream_id)
        self.run_id = str(options.get("run_id") or context.stream_id)
        self.message_id = str(options.get("message_id") or f"{self.run_id}-assistant")
        super().__init__(f"{self.message_id}-tool-")
        self._model = context.model
        self._started = False
        self._ended = False
        self._reasoning = 0

    def encode(self, event: GenEvent) -> list[WireEvent]:
        if type(event) is Token and (data := self._continued(event.chunk)) is not None:
            return [(None, data)]  # the hot path: a delta of the open message
        if self._ended:
            return []
        out: list[dict[str, Any]] = []
        if not self._started:
            self._started = True
            out.append({"type": "RUN_STARTED", "threadId": self.thread_id, "runId": self.run_id})
        if isinstance(event, Token):
            out += self._token(event.chunk)
        elif isinstance(event, Finished):
            out += self._finished(event)
        elif isinstance(event, Failed):
            out += self._failed(event.error, event.usage)
        elif isinstance(event, Cancelled):
            out += self._cancelled(event)
        else:
            assert isinstance(event, Started)
        return [(None, wire_json(e)) for e in out]

    def end(self) -> list[WireEvent]:
        return []

    # -- output -------------------------------------------------------------------------------
    def _delta(self, kind: str, delta: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self._open is None or self._open[0] != kind:
            out += self._close()
            if kind == "text":
                self._open = ("text", self.message_id)
                start = {"type": "TEXT_MESSAGE_START", "messageId": self.message_id}
                out.append({**start, "role": "assistant"})
            else:
                self._reasoning += 1
                rid = f"{self.message_id}-reasoning-{self._reasoning}"
                self._open = ("reasoning", rid)
                out.append({"type": "REASONING_START", "messageId": rid})
                start = {"type": "REASONING_MESSAGE_START", "messageId": rid}
                out.append({**start, "role": "reasoning"})
        kind_name = "TEXT_MESSAGE" if kind == "text" else "REASONING_MESSAGE"
        head = {"type": f"{kind_name}_CONTENT", "messageId": self._open[1]}
        self._cache_delta_head(head)
        out.append({**head, "delta": delta})
        return out

    def _close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        kind, mid = self._open
        self._open = None
        if kind == "text":
            return [{"type": "TEXT_MESSAGE_END", "messageId": mid}]
        return [
            {"type": "REASONING_MESSAGE_END", "messageId": mid},
            {"type": "REASONING_END", "messageId": mid},
        ]

    def _tool_args(self, call: ToolCall, text: str) -> dict[str, Any]:
        return {"type": "TOOL_CALL_ARGS", "toolCallId": call.id, "delta": text}

    def _start_tool(self, call: ToolCall) -> list[dict[str, Any]]:
        out = self._close()
        start = {"type": "TOOL_CALL_START", "toolCallId": call.id, "toolCallName": call.name}
        out.append({**start, "parentMessageId": self.message_id})
        return out

    def _end_tools(self) -> list[dict[str, Any]]:
        out = self._start_unstarted_tools()
        out += [{"type": "TOOL_CALL_END", "toolCallId": c.id} for c in self._tools.calls()]
        return out

    # -- endings ------------------------------------------------------------------------------
    def _usage(self, usage: Usage) -> list[dict[str, Any]]:
        return [
            {
                "model": self._model,
                "inputTokens": usage.prompt_tokens,
                "outputTokens": usage.completion_tokens,
                "totalTokens": usage.total_tokens,
            }
        ]

    def _run(self) -> dict[str, Any]:
        return {"type": "RUN_FINISHED", "threadId": self.thread_id, "runId": self.run_id}

    def _finished(self, event: Finished) -> list[dict[str, Any]]:
        self._ended = True
        out = [*self._close(), *self._end_tools()]
        finished = {**self._run(), "usage": self._usage(event.usage)}
        if self._tools:
            pending = [call.id for call in self._tools.calls()]
            finished["outcome"] = {"type": "success", "pendingToolCallIds": pending}
        finished["metadata"] = {"mianzhang": {"finishReason": event.finish_reason}}
        out.append(finished)
        return out

    def _failed(self, error: LLMError, usage: Usage) -> list[dict[str, Any]]:
        self._ended = True
        body = error_payload(error)["error"]
        run_error: dict[str, Any] = {"type": "RUN_ERROR", "message": body["message"]}
        if body["code"] is not None:
            run_error["code"] = body["code"]
        run_error["usage"] = self._usage(usage)
        return [*self._close(), run_error]

    def _cancelled(self, event: Cancelled) -> list[dict[str, Any]]:
        self._ended = True
        out = [*self._close(), *self._end_tools()]
        finished = {**self._run(), "outcome": {"type": "cancelled"}}
        finished["usage"] = self._usage(event.usage)
        finished["metadata"] = {"mianzhang": {"cancelReason": event.reason}}
        out.append(finished)
        return out


_OPENERS: Final = {
    "TEXT_MESSAGE_START": "messageId",
    "REASONING_START": "messageId",
    "REASONING_MESSAGE_START": "messageId",
    "TOOL_CALL_START": "toolCallId",
}
_CLOSERS: Final = {
    "TEXT_MESSAGE_END": "TEXT_MESSAGE_START",
    "REASONING_END": "REASONING_START",
    "REASONING_MESSAGE_END": "REASONING_MESSAGE_START",
    "TOOL_CALL_END": "TOOL_CALL_START",
}


def _track(
    opened: dict[tuple[str, str], WireEvent], kind: str, event: dict[str, Any], wire: WireEvent
) -> None:
    if kind in _OPENERS:
        opened[(kind, event[_OPENERS[kind]])] = wire
        return
    opener = _CLOSERS.get(kind)
    if opener is not None:
        opened.pop((opener, event[_OPENERS[opener]]), None)


def agui_reopen(sent: Iterable[WireEvent]) -> list[WireEvent]:
    """What a resumed connection sends before the events its client missed, given the events
    it received (``sent``): ``RUN_STARTED`` again, then the start event of every message,
    reasoning span and tool call still open, in the order they were opened; nothing if the
    run had not started or had ended.

    ``HttpAgent`` verifies each connection on its own (``RUN_STARTED`` first; no content for
    a message this connection did not start) and, seeing the start of a message or tool call
    it already holds, continues it. So the client gets every part once, whatever event the
    first connection stopped after, even inside the events of one token. A replay from the
    first event would not do: the client appends the replayed text to what it holds."""
    run: WireEvent | None = None
    opened: dict[tuple[str, str], WireEvent] = {}
    for name, data in sent:
        event = orjson.loads(data)
        kind = event.get("type")
        if kind == "RUN_STARTED":
            run, opened = (name, data), {}
            continue
        if kind in ("RUN_FINISHED", "RUN_ERROR"):
            run = None
            continue
        _track(opened, kind, event, (name, data))
    return [] if run is None else [run, *opened.values()]


class AGUISurface:
    """The ``agui`` surface: AG-UI events over SSE."""

    name = "agui"
    media_type = "text/event-stream"
    headers: Mapping[str, str] = AGUI_HEADERS

    def encoder(self, context: SurfaceContext) -> AGUIEncoder:
        return AGUIEncoder(context)


AGUI = AGUISurface()
