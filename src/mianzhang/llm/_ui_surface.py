"""The AI SDK's UI message stream (v1) as a surface of generations (``useChat``, ``Chat``).

Wire shape, as ``ai`` 7 parses it (``DefaultChatTransport`` runs every ``data:`` event
through ``uiMessageChunkSchema``, ``processUIMessageStream`` builds the message): one JSON
chunk per ``data:`` event, ``data: [DONE]`` last, headers ``x-vercel-ai-ui-message-stream: v1``
and ``x-accel-buffering: no``. A generation reads as::

    start{messageId, messageMetadata{model}}  start-step
    reasoning-start/-delta/-end{id}            (when the model gives reasoning)
    text-start/-delta/-end{id}
    tool-input-start{toolCallId, toolName}     tool-input-delta{toolCallId, inputTextDelta}
    tool-input-available{toolCallId, toolName, input}   (tool-input-error if not JSON)
    finish-step  finish{finishReason, messageMetadata{usage, timings, model, finishReason}}

and, between them, our progress: a *transient* data part after the 1st output token and every
:data:`PROGRESS_EVERY` (16) output tokens (tokens with text, reasoning or tool-call deltas)::

    data-progress{data{outputTokens, elapsedMs, timeToFirstTokenMs, tokensPerSecond}, transient}

``elapsedMs`` is the gateway's clock at that token (``Token.elapsed``, since the generation
started; ``null`` when unknown), ``tokensPerSecond`` the rate after the first token (``null``
until the second), as ``timings`` computes it. ``ai`` hands a transient data part to
``onData`` (``useChat({onData})``) and does not store it in the message: progress is a live
figure, not content to save with the chat and send back as history every turn. A replay
(below) calls ``onData`` again for the parts it repeats, in order, but adds no part, so the
message of a resumed read equals that of a clean read (and the server's saved message,
``_ui_fold.py``, holds no progress either). The final figures are not sent as one more data
part: they are the ending's ``messageMetadata`` (``usage``, ``timings``), which ``ai`` keeps
in ``message.metadata``.

A failed generation ends ``message-metadata`` (with ``status: "failed"`` and ``error{message,
type, code}``), ``error{errorText}``, ``finish-step``, ``finish{finishReason: "error"}``
(``streamText``'s order for an in-stream model error); a cancelled one ends
``message-metadata`` (with ``status: "stopped"``, ``stopReason``), ``abort{reason}`` with no
``finish`` (``streamText``
ends an aborted stream with ``abort`` alone; ``handleUIMessageStreamFinish`` reports it as
aborted). Open text and reasoning parts are closed first in both cases, so a client's parts
end ``done`` rather than ``streaming`` forever (``streamText`` leaves them open on abort).
The SDK merges ``messageMetadata`` into ``message.metadata`` and keeps neither ``error`` nor
``abort`` in the message: the ``status`` and ``error`` keys are how a saved message (the
server's chat store, a reloaded page) still says how its answer ended.

Resume: the message id is ``options["message_id"]`` or the stream id, so a replay from the
first event repeats the same ``start``. ``Chat.resumeStream`` with ``DefaultChatTransport``
(``resumeStreamIsReplay`` defaults to true) rebuilds the message from that first ``start``
and replaces the message with that id: a replay shows no duplicate parts.
Part ids (``text-1``, ``reasoning-2``) count the parts of the stream, so they too are the
same on every replay. OpenAI finish reasons map to the SDK's (``tool_calls`` ->
``tool-calls``, ``content_filter`` -> ``content-filter``; unknown ones -> ``other``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import orjson

from ._deltas import ToolCall
from ._openai_errors import error_payload
from ._parts import PartEncoder
from ._surface import SurfaceContext, WireEvent, wire_json
from ._types import Cancelled, Failed, Finished, GenEvent, Started, Timings, Token, Usage

__all__ = [
    "PROGRESS_EVERY",
    "UI",
    "UI_STREAM_HEADERS",
    "UIMessageStreamEncoder",
    "UISurface",
    "ui_finish_reason",
]

PROGRESS_EVERY: Final = 16
"""Output tokens between two ``data-progress`` parts (the native surface's cadence)."""

UI_STREAM_HEADERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "cache-control": "no-cache",
        "x-vercel-ai-ui-message-stream": "v1",
        "x-accel-buffering": "no",
    }
)

_FINISH_REASONS: Final = MappingProxyType(
    {
        "stop": "stop",
        "length": "length",
        "tool_calls": "tool-calls",
        "function_call": "tool-calls",
        "content_filter": "content-filter",
        "error": "error",
    }
)


def ui_finish_reason(reason: str) -> str:
    """The AI SDK's ``FinishReason`` for an OpenAI-style finish reason."""
    return _FINISH_REASONS.get(reason, "other")


def _usage(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "inputTokens": usage.prompt_tokens,
        "outputTokens": usage.completion_tokens,
        "totalTokens": usage.total_tokens,
    }
    if usage.estimated:
        out["estimated"] = True
    return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _timings(timings: Timings) -> dict[str, Any]:
    raw = timings.to_json()
    return {
        "timeToFirstTokenMs": raw["time_to_first_token_ms"],
        "durationMs": raw["duration_ms"],
        "tokensPerSecond": raw["tokens_per_second"],
    }


class UIMessageStreamEncoder(PartEncoder):
    """Encodes one generation as UI message chunks (see the module docstring). Pure: the
    same events always give the same chunks. ``progress_every`` is the cadence of the
    ``data-progress`` parts, in output tokens (at least 1, else ``ValueError``)."""

    def __init__(self, context: SurfaceContext, *, progress_every: int = PROGRESS_EVERY) -> None:
        if progress_every < 1:
            raise ValueError(f"progress_every must be at least 1, not {progress_every}")
        self.message_id = str(context.options.get("message_id") or context.stream_id)
        super().__init__(f"{self.message_id}-tool-")
        self._model = context.model
        self._started = False
        self._ended = False
        self._parts = 0
        self._every = progress_every
        self._tokens = 0  # output tokens so far
        self._first: float | None = None  # the first output token's elapsed seconds

    def encode(self, event: GenEvent) -> list[WireEvent]:
        if type(event) is Token and (data := self._continued(event.chunk)) is not None:
            self._tokens += 1  # the hot path: a delta of the open part
            if self._tokens % self._every:
                return [(None, data)]
            return [(None, data), (None, self._progress(event.elapsed))]
        if self._ended:
            return []
        out: list[dict[str, Any]] = []
        progress: list[WireEvent] = []
        if not self._started:
            self._started = True
            start = {"type": "start", "messageId": self.message_id}
            out += [{**start, "messageMetadata": {"model": self._model}}, {"type": "start-step"}]
        if isinstance(event, Token):
            out += self._token(event.chunk)
            if event.chunk.is_token:
                progress = self._tick(event.elapsed)
        elif isinstance(event, Finished):
            out += self._finished(event)
        elif isinstance(event, Failed):
            out += self._failed(event)
        elif isinstance(event, Cancelled):
            out += self._cancelled(event)
        else:
            assert isinstance(event, Started)
        return [(None, wire_json(chunk)) for chunk in out] + progress

    def end(self) -> list[WireEvent]:
        return [(None, "[DONE]")]

    # -- output -------------------------------------------------------------------------------
    def _tick(self, elapsed: float | None) -> list[WireEvent]:
        """Count one output token; its ``data-progress`` part when one is due."""
        self._tokens += 1
        if self._tokens == 1:
            self._first = elapsed
        elif self._tokens % self._every:
            return []
        return [(None, self._progress(elapsed))]

    def _progress(self, elapsed: float | None) -> str:
        """The ``data-progress`` chunk after ``self._tokens`` tokens (rate as ``Timings``)."""
        first, tokens = self._first, self._tokens
        rate = None
        if first is not None and elapsed is not None and tokens > 1 and elapsed > first:
            rate = round((tokens - 1) / (elapsed - first), 3)
        data = {
            "outputTokens": tokens,
            "elapsedMs": _ms(elapsed),
            "timeToFirstTokenMs": _ms(first),
            "tokensPerSecond": rate,
        }
        return f'{{"type":"data-progress","data":{wire_json(data)},"transient":true}}'

    def _delta(self, kind: str, delta: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self._open is None or self._open[0] != kind:
            out += self._close()
            self._parts += 1
            self._open = (kind, f"{kind}-{self._parts}")
            out.append({"type": f"{kind}-start", "id": self._open[1]})
            self._cache_delta_head({"type": f"{kind}-delta", "id": self._open[1]})
        out.append({"type": f"{kind}-delta", "id": self._open[1], "delta": delta})
        return out

    def _close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        kind, part_id = self._open
        self._open = None
        return [{"type": f"{kind}-end", "id": part_id}]

    def _tool_args(self, call: ToolCall, text: str) -> dict[str, Any]:
        return {"type": "tool-input-delta", "toolCallId": call.id, "inputTextDelta": text}

    def _start_tool(self, call: ToolCall) -> list[dict[str, Any]]:
        out = self._close()
        out.append({"type": "tool-input-start", "toolCallId": call.id, "toolName": call.name})
        return out

    def _tool_inputs(self) -> list[dict[str, Any]]:
        """``tool-input-available`` (or ``-error``) for every tool call, in index order."""
        out = self._start_unstarted_tools()
        for call in self._tools.calls():
            head = {"toolCallId": call.id, "toolName": call.name}
            try:
                value = orjson.loads(call.text or "{}")
            except orjson.JSONDecodeError:
                error = f"the tool call's arguments are not JSON: {call.text[:200]!r}"
                out.append(
                    {"type": "tool-input-error", **head, "input": call.text, "errorText": error}
                )
                continue
            out.append({"type": "tool-input-available", **head, "input": value})
        return out

    # -- endings ------------------------------------------------------------------------------
    def _metadata(self, usage: Usage, timings: Timings) -> dict[str, Any]:
        return {"model": self._model, "usage": _usage(usage), "timings": _timings(timings)}

    def _finished(self, event: Finished) -> list[dict[str, Any]]:
        self._ended = True
        out = [*self._close(), *self._tool_inputs(), {"type": "finish-step"}]
        metadata = self._metadata(event.usage, event.timings)
        reason = ui_finish_reason(event.finish_reason)
        metadata["finishReason"] = reason
        out.append({"type": "finish", "finishReason": reason, "messageMetadata": metadata})
        return out

    def _failed(self, event: Failed) -> list[dict[str, Any]]:
        self._ended = True
        metadata = self._metadata(event.usage, event.timings)
        error = error_payload(event.error)["error"]
        metadata["status"] = "failed"
        metadata["error"] = {"message": error["message"], "type": error["type"]}
        if error["code"] is not None:
            metadata["error"]["code"] = error["code"]
        return [
            *self._close(),
            {"type": "message-metadata", "messageMetadata": metadata},
            {"type": "error", "errorText": str(event.error)},
            {"type": "finish-step"},
            {"type": "finish", "finishReason": "error"},
        ]

    def _cancelled(self, event: Cancelled) -> list[dict[str, Any]]:
        self._ended = True
        metadata = self._metadata(event.usage, event.timings)
        metadata["status"] = "stopped"
        metadata["stopReason"] = event.reason
        return [
            *self._close(),
            {"type": "message-metadata", "messageMetadata": metadata},
            {"type": "abort", "reason": event.reason},
        ]


class UISurface:
    """The ``ui`` surface: AI SDK UI message stream v1 over SSE."""

    name = "ui"
    media_type = "text/event-stream"
    headers: Mapping[str, str] = UI_STREAM_HEADERS

    def encoder(self, context: SurfaceContext) -> UIMessageStreamEncoder:
        return UIMessageStreamEncoder(context)


UI = UISurface()
