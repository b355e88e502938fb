"""OpenAI Responses API wire format: typed events with ``sequence_number``.

One generation becomes, in order: ``response.created``, ``response.in_progress``,
``response.output_item.added``, ``response.content_part.added``, one
``response.output_text.delta`` per token, then ``response.output_text.done``,
``response.content_part.done``, ``response.output_item.done`` and ``response.completed``
(with usage). A failure before any output is ``response.failed``; a failure after output is an
``error`` event followed by ``response.failed`` (the deltas already sent stay in the log). A
cancelled response ends with ``response.failed`` whose ``response.status`` is ``cancelled``.

``sequence_number`` counts from 0 in the order events are appended to the stream's log, so
event ``n`` is the log's event with seq ``n + 1``: ``starting_after=N`` resumes after log seq
``N + 1``. :class:`ResponseSnapshot` rebuilds the response object from the stored events (for
``GET /v1/responses/{id}`` without ``stream``).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from .._errors import InvalidLLMRequest, LLMError
from ._openai_errors import error_payload
from ._types import Failed, Finished, GenEvent, Started, Token, Usage

__all__ = ["ResponseSnapshot", "ResponsesEncoder", "responses_input_to_messages"]

Encoded = tuple[str, str]  # (event type, JSON payload)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def responses_input_to_messages(input: Any, instructions: str | None) -> list[dict[str, Any]]:
    """Chat messages for a Responses API ``input`` (a string or a list of message items)."""
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    if isinstance(input, str):
        messages.append({"role": "user", "content": input})
        return messages
    if not isinstance(input, list) or not input:
        raise InvalidLLMRequest(
            "input must be a string or a non-empty list of messages", param="input"
        )
    for i, item in enumerate(input):
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            raise InvalidLLMRequest(f"input[{i}] must be a message item", param=f"input[{i}]")
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise InvalidLLMRequest(f"input[{i}].role is not supported", param=f"input[{i}].role")
        content = item.get("content")
        if isinstance(content, list):
            texts = [
                part.get("text", "")
                for part in content
                if isinstance(part, dict)
                and part.get("type") in ("input_text", "output_text", "text")
            ]
            content = "".join(texts)
        if not isinstance(content, str):
            raise InvalidLLMRequest(f"input[{i}].content must be text", param=f"input[{i}].content")
        messages.append({"role": "system" if role == "developer" else role, "content": content})
    return messages


def _base_response(
    response_id: str, model: str, created: int, background: bool, params: dict[str, Any]
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
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": params.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
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
        params: dict[str, Any] | None = None,
    ) -> None:
        self.response_id = response_id
        self.sequence = 0
        self._response = _base_response(response_id, model, created, background, params or {})
        self._item_id = "msg_" + secrets.token_hex(16)
        self._text: list[str] = []
        self._opened = False
        self._ended = False

    def _event(self, type_: str, **fields: Any) -> Encoded:
        fields["type"] = type_
        fields["sequence_number"] = self.sequence
        self.sequence += 1
        return type_, _dumps(fields)

    def _item(self, status: str) -> dict[str, Any]:
        return {
            "id": self._item_id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [] if status == "in_progress" and not self._text else [self._part()],
        }

    def _part(self) -> dict[str, Any]:
        return {
            "type": "output_text",
            "text": "".join(self._text),
            "annotations": [],
            "logprobs": [],
        }

    def _open(self) -> list[Encoded]:
        self._opened = True
        where = {"item_id": self._item_id, "output_index": 0, "content_index": 0}
        return [
            self._event(
                "response.output_item.added", output_index=0, item=self._item("in_progress")
            ),
            self._event(
                "response.content_part.added",
                **where,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            ),
        ]

    def _close_item(self, status: str) -> list[Encoded]:
        where = {"item_id": self._item_id, "output_index": 0, "content_index": 0}
        text = "".join(self._text)
        return [
            self._event("response.output_text.done", **where, text=text, logprobs=[]),
            self._event("response.content_part.done", **where, part=self._part()),
            self._event("response.output_item.done", output_index=0, item=self._item(status)),
        ]

    def _final(self, status: str, usage: Usage, error: dict[str, Any] | None) -> dict[str, Any]:
        response = dict(self._response)
        response["status"] = status
        response["output"] = (
            [self._item("completed" if status == "completed" else "incomplete")]
            if self._opened
            else []
        )
        response["usage"] = usage.to_responses()
        response["error"] = error
        if status == "completed":
            response["completed_at"] = int(time.time())
        return response

    def encode(self, event: GenEvent) -> list[Encoded]:
        """The events ``event`` adds to the stream."""
        if isinstance(event, Token):
            text = event.chunk.text
            if not text:
                return []
            out = [] if self._opened else self._open()
            self._text.append(text)
            out.append(
                self._event(
                    "response.output_text.delta",
                    item_id=self._item_id,
                    output_index=0,
                    content_index=0,
                    delta=text,
                    logprobs=[],
                )
            )
            return out
        if isinstance(event, Started):
            return [
                self._event("response.created", response=self._response),
                self._event("response.in_progress", response=self._response),
            ]
        self._ended = True
        if isinstance(event, Finished):
            out = ([] if self._opened else self._open()) + self._close_item("completed")
            out.append(
                self._event(
                    "response.completed", response=self._final("completed", event.usage, None)
                )
            )
            return out
        assert isinstance(event, Failed)
        return self.failed(event.error, event.usage)

    def failed(self, error: LLMError, usage: Usage, *, status: str = "failed") -> list[Encoded]:
        """The closing events of a response that failed (or, ``status="cancelled"``, was
        cancelled) after whatever output was already encoded."""
        self._ended = True
        payload = error_payload(error)["error"]
        out: list[Encoded] = []
        if self._opened:
            out.append(
                self._event("error", code=payload["code"], message=payload["message"], param=None)
            )
            out.extend(self._close_item("incomplete"))
        detail = {"code": payload["code"] or payload["type"], "message": payload["message"]}
        out.append(self._event("response.failed", response=self._final(status, usage, detail)))
        return out

    @property
    def ended(self) -> bool:
        return self._ended


class ResponseSnapshot:
    """Rebuilds the current response object from its stream's stored events."""

    def __init__(self) -> None:
        self.response: dict[str, Any] | None = None
        self._text: list[str] = []
        self._item_id: str | None = None
        self.last_sequence = -1

    def apply(self, data: str) -> None:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        seq = event.get("sequence_number")
        if isinstance(seq, int):
            self.last_sequence = seq
        if isinstance(event.get("response"), dict):
            self.response = event["response"]
        elif event.get("type") == "response.output_text.delta":
            self._text.append(str(event.get("delta", "")))
            self._item_id = str(event.get("item_id"))

    def result(self) -> dict[str, Any] | None:
        """The response object: final if the response ended, else in progress with the text
        generated so far."""
        if self.response is None:
            return None
        response = dict(self.response)
        if response.get("status") == "in_progress" and self._text:
            part = {"type": "output_text", "text": "".join(self._text), "annotations": []}
            response["output"] = [
                {
                    "id": self._item_id,
                    "type": "message",
                    "status": "in_progress",
                    "role": "assistant",
                    "content": [part],
                }
            ]
        return response
