"""The ``responses`` surface: OpenAI Responses API events with ``sequence_number``.

One generation becomes, in order: ``response.created``, ``response.in_progress``, its output
items (``_responses_items.py``: a ``message`` with ``response.output_text.delta`` per token,
``reasoning`` items for reasoning text, one ``function_call`` item per tool call with
``response.function_call_arguments.delta``), then ``response.completed`` (with usage), or
``response.incomplete`` (``incomplete_details.reason``: ``max_output_tokens`` or
``content_filter``) for an answer cut by ``max_output_tokens`` or a filter. A generation with
no output still gets an empty message. A failure before any output is
``response.failed``; a failure after output is an ``error`` event, the open item closed as
``incomplete``, then ``response.failed`` (the deltas already sent stay in the log). A cancelled
response ends the same way, its ``response.status`` being ``cancelled``.

``sequence_number`` counts the events of this surface from 0. The encoder is pure (ids derived
from the stream id, ``completed_at`` from the ``Finished`` event), so event ``N`` is the same
for every reader: ``starting_after=N`` resumes after the ``N``-th event by replay.

Options (from the request that started the generation): ``background`` and ``params`` (the
request fields echoed in the response object).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from .._errors import GenerationCancelled, LLMError
from ._openai_errors import error_payload
from ._responses_input import ResponseSnapshot, responses_input_to_messages
from ._responses_items import FunctionCallItem, MessageItem, OutputItem, ReasoningItem
from ._surface import SurfaceContext, WireEvent, wire_json
from ._types import Cancelled, Chunk, Failed, Finished, GenEvent, Started, Token, Usage

__all__ = [
    "RESPONSES",
    "ResponseSnapshot",
    "ResponsesEncoder",
    "ResponsesSurface",
    "responses_input_to_messages",
]


_INCOMPLETE: Final = {"length": "max_output_tokens", "content_filter": "content_filter"}
"""``finish_reason`` -> ``incomplete_details.reason`` of a response ended short."""


def _base_response(
    response_id: str, model: str, created: int, background: bool, params: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": background,
        "error": None,
        "incomplete_details": None,
        "instructions": params.get("instructions"),
        "max_output_tokens": params.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": params.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": params.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": params.get("tool_choice", "auto"),
        "tools": params.get("tools", []),
        "top_p": params.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": params.get("metadata") or {},
    }


class ResponsesEncoder:
    """Encodes the events of one generation as Responses API events ``(type, json)``."""

    def __init__(
        self,
        *,
        response_id: str,
        model: str,
        created: int,
        background: bool,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.response_id = response_id
        self.sequence = 0
        self._created = created
        self._response = _base_response(response_id, model, created, background, params or {})
        self._items: list[OutputItem] = []
        self._current: OutputItem | None = None
        self._ended = False

    def _event(self, type_: str, **fields: Any) -> WireEvent:
        fields["type"] = type_
        fields["sequence_number"] = self.sequence
        self.sequence += 1
        return type_, wire_json(fields)

    def _switch(self, item: OutputItem) -> list[WireEvent]:
        """Close the open item (if any) and open ``item``."""
        out = self._close_current("completed")
        self._items.append(item)
        self._current = item
        return out + item.opened(self._event)

    def _close_current(self, status: str) -> list[WireEvent]:
        current, self._current = self._current, None
        return [] if current is None else current.closed(status, self._event)

    def _text(self, kind: str, piece: str) -> list[WireEvent]:
        current = self._current
        if type(current) is MessageItem and kind == "message":  # the hot path
            self.sequence += 1
            return [current.text_delta(piece, self.sequence - 1)]
        out: list[WireEvent] = []
        if current is None or current.kind != kind:
            index = len(self._items)
            item = MessageItem if kind == "message" else ReasoningItem
            out = self._switch(item(self.response_id, index))
            current = self._current
        assert current is not None
        return out + current.delta(piece, self._event)

    def _call(self, call: dict[str, Any]) -> list[WireEvent]:
        out: list[WireEvent] = []
        current = self._current
        if (
            current is None
            or current.kind != "function_call"
            or current.key != call.get("index", 0)
        ):
            out = self._switch(FunctionCallItem(self.response_id, len(self._items), call))
            current = self._current
        assert current is not None
        return out + current.delta(call, self._event)

    def _token(self, chunk: Chunk) -> list[WireEvent]:
        out: list[WireEvent] = []
        if chunk.reasoning:
            out += self._text("reasoning", chunk.reasoning)
        if chunk.text:
            out += self._text("message", chunk.text)
        for call in chunk.tool_calls or ():
            out += self._call(call)
        return out

    def _final(self, status: str, usage: Usage, error: dict[str, Any] | None) -> dict[str, Any]:
        response = dict(self._response)
        response["status"] = status
        response["output"] = [item.item(item.status) for item in self._items]
        response["usage"] = usage.to_responses()
        response["error"] = error
        return response

    def _completed(self, event: Finished) -> list[WireEvent]:
        """``response.completed``; ``response.incomplete`` for an answer cut by the token
        limit or a content filter (its last item ``incomplete``)."""
        cut = _INCOMPLETE.get(event.finish_reason)
        status = "completed" if cut is None else "incomplete"
        out = [] if self._items else self._switch(MessageItem(self.response_id, 0))
        out += self._close_current(status)
        response = self._final(status, event.usage, None)
        if cut is not None:
            response["incomplete_details"] = {"reason": cut}
        completed = event.completed_at
        if completed is None:
            completed = self._created + int(event.timings.duration)
        response["completed_at"] = completed
        out.append(self._event(f"response.{status}", response=response))
        return out

    def encode(self, event: GenEvent) -> list[WireEvent]:
        """The events ``event`` adds to the stream."""
        if isinstance(event, Token):
            return self._token(event.chunk)
        if isinstance(event, Started):
            return [
                self._event("response.created", response=self._response),
                self._event("response.in_progress", response=self._response),
            ]
        self._ended = True
        if isinstance(event, Finished):
            return self._completed(event)
        if isinstance(event, Cancelled):
            return self._failed(GenerationCancelled(event.reason), event.usage, "cancelled")
        assert isinstance(event, Failed)
        return self._failed(event.error, event.usage, "failed")

    def end(self) -> list[WireEvent]:
        return []

    def _failed(self, error: LLMError, usage: Usage, status: str) -> list[WireEvent]:
        """The closing events of a response that failed (or, ``status="cancelled"``, was
        cancelled) after whatever output was already encoded."""
        payload = error_payload(error)["error"]
        out: list[WireEvent] = []
        if self._current is not None:
            out.append(
                self._event("error", code=payload["code"], message=payload["message"], param=None)
            )
            out.extend(self._close_current("incomplete"))
        detail = {"code": payload["code"] or payload["type"], "message": payload["message"]}
        out.append(self._event("response.failed", response=self._final(status, usage, detail)))
        return out

    @property
    def ended(self) -> bool:
        return self._ended


class ResponsesSurface:
    """The ``responses`` surface (options: ``background``, ``params``)."""

    name = "responses"
    media_type = "text/event-stream"
    headers: Mapping[str, str] = MappingProxyType({})

    def encoder(self, context: SurfaceContext) -> ResponsesEncoder:
        options = context.options
        params = options.get("params")
        return ResponsesEncoder(
            response_id=context.stream_id,
            model=context.model,
            created=context.created,
            background=bool(options.get("background", False)),
            params=params if isinstance(params, Mapping) else None,
        )


RESPONSES = ResponsesSurface()
