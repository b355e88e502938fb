"""The ``anthropic`` surface: a generation as Anthropic Messages API stream events.

Every wire event is named (SSE ``event:``) by its ``type`` — the ``anthropic`` SDKs skip
unnamed events — and its data is the JSON object Anthropic sends:

* ``Started`` -> ``message_start`` (a ``message`` with the stream's id in ``msg_…`` form, the
  model, empty ``content``, ``stop_reason: null``, usage with ``input_tokens`` from the
  context's ``options["input_tokens"]`` — the request's estimate — else 0), then one ``ping``.
* ``Token`` -> content blocks, at most one open at a time, indexes counting from 0 in the
  order blocks start: ``Chunk.reasoning`` -> a ``thinking`` block (``thinking_delta``),
  ``Chunk.text`` -> a ``text`` block (``text_delta``), each OpenAI tool-call delta -> a
  ``tool_use`` block per tool-call ``index`` (``id`` and ``name`` from its first delta,
  ``input: {}``; ``function.arguments`` pieces as ``input_json_delta``; a delta bringing a
  new ``id`` for an index already used starts a new block, as some servers reuse index 0).
  A block is stopped (``content_block_stop``) when a block of another kind, or another tool
  call, starts. A late argument piece of an already stopped tool call is still sent to that
  call's block (both SDKs accumulate by index, also after the block's stop).
* ``Finished`` -> ``content_block_stop`` of the open block, ``message_delta`` (``stop_reason``
  per :data:`STOP_REASONS`, cumulative ``usage`` with ``input_tokens`` and ``output_tokens``),
  ``message_stop``.
* ``Failed`` -> ``error`` with Anthropic's error body (type per :mod:`._anthropic_errors`:
  an upstream 429 ``rate_limit_error``, 503/529 ``overloaded_error``, ...).
* ``Cancelled`` -> ``error`` too: ``cancelled_error`` (``overloaded_error`` for a shutdown).

Decisions taken from the ``anthropic`` SDK's source (``_streaming.py``,
``lib/streaming/_messages.py``):

* An ``error`` event makes the SDK raise ``APIStatusError`` (status 200, ``body`` = the
  error body) from the stream, while ``stream.current_message_snapshot`` keeps what arrived.
  A stream that ends without ``message_stop`` is NOT an error to the SDK:
  ``get_final_message()`` returns the partial snapshot as if complete. So a cancelled
  generation ends with an ``error`` event (the caller learns it was cut; the partial content
  stays readable), never with a silent ``message_stop``, and never by just ending.
* ``message_delta.usage`` values are cumulative and overwrite the snapshot's (``input_tokens``
  too, when present): the final counts go there, correcting the estimate of ``message_start``.
* ``thinking`` blocks start with ``signature: ""``; no ``signature_delta`` is sent (the
  gateway's events carry no signature: one made up would fail Anthropic's check if sent back).
* ``ping`` events are skipped by the SDK. The real API sends the first one after the first
  ``content_block_start``; here it follows ``message_start`` so a reader gets it at once,
  before the upstream's first token.

Not produced: ``stop_reason: "stop_sequence"`` with its ``stop_sequence`` — the gateway's
events carry no matched stop sequence (a stop sequence ends as ``end_turn``).

:class:`AnthropicMessageCollector` builds the ``Message`` object of ``stream: false`` from the
same wire events, so both shapes always agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import orjson

from .._errors import GenerationCancelled, LLMError
from ._anthropic_errors import error_event_payload
from ._anthropic_tables import stop_reason_for
from ._surface import Surface, SurfaceContext, SurfaceEncoder, WireEvent
from ._types import Cancelled, Chunk, Failed, Finished, GenEvent, Token

__all__ = [
    "ANTHROPIC",
    "AnthropicEncoder",
    "AnthropicMessageCollector",
    "AnthropicSurface",
    "message_id",
]

Payload = dict[str, Any]
_HEADERS: Final = MappingProxyType({"cache-control": "no-cache", "x-accel-buffering": "no"})


def message_id(stream_id: str) -> str:
    """The ``msg_…`` id of a stream (the stream id itself when it already has that form)."""
    return stream_id if stream_id.startswith("msg_") else f"msg_{stream_id}"


class AnthropicEncoder:
    """Encodes one generation's events as Messages API stream events (module docstring).

    Pure: the same events give the same wire events. After the terminal event nothing more is
    produced; :meth:`end` adds nothing (the stream has no ``[DONE]``).
    """

    def __init__(self, context: SurfaceContext) -> None:
        self.message_id = message_id(context.stream_id)
        self._model = context.model
        input_tokens = context.options.get("input_tokens", 0)
        self._input_tokens = input_tokens if isinstance(input_tokens, int) else 0
        self._started = False
        self._ended = False
        self._next_index = 0
        self._open: str | None = None  # "thinking", "text" or "tool_use:<block index>"
        self._tools: dict[int, tuple[int, str]] = {}  # tool-call index -> (block index, id)

    # -- payloads -------------------------------------------------------------------------
    def payloads(self, event: GenEvent) -> list[Payload]:
        """The wire events for ``event``, as objects (their ``type`` is the event name)."""
        if self._ended:
            return []
        out: list[Payload] = []
        if not self._started:
            self._started = True
            out += self._message_start()
        if isinstance(event, Token):
            out += self._token(event.chunk)
        elif isinstance(event, Finished):
            out += self._finish(event)
        elif isinstance(event, Failed | Cancelled):
            self._ended = True
            error = event.error if isinstance(event, Failed) else GenerationCancelled(event.reason)
            out.append(error_event_payload(error))
        return out

    def _message_start(self) -> list[Payload]:
        message: Payload = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._input_tokens, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}, {"type": "ping"}]

    def _start_block(self, key: str, block: Payload) -> list[Payload]:
        out = self._stop_block()
        self._open = key
        out.append(
            {"type": "content_block_start", "index": self._next_index, "content_block": block}
        )
        self._next_index += 1
        return out

    def _stop_block(self) -> list[Payload]:
        if self._open is None:
            return []
        self._open = None
        return [{"type": "content_block_stop", "index": self._next_index - 1}]

    def _delta(self, key: str, block: Payload, delta: Payload) -> list[Payload]:
        out = self._start_block(key, block) if self._open != key else []
        out.append({"type": "content_block_delta", "index": self._next_index - 1, "delta": delta})
        return out

    def _token(self, chunk: Chunk) -> list[Payload]:
        out: list[Payload] = []
        if chunk.reasoning:
            block = {"type": "thinking", "thinking": "", "signature": ""}
            delta = {"type": "thinking_delta", "thinking": chunk.reasoning}
            out += self._delta("thinking", block, delta)
        if chunk.text:
            block = {"type": "text", "text": ""}
            out += self._delta("text", block, {"type": "text_delta", "text": chunk.text})
        for call in chunk.tool_calls or ():
            out += self._tool_call(call)
        return out

    def _tool_call(self, call: Mapping[str, Any]) -> list[Payload]:
        index = call.get("index")
        index = index if isinstance(index, int) else len(self._tools)
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        call_id = call.get("id")
        known = self._tools.get(index)
        out: list[Payload] = []
        if known is None or (call_id and call_id != known[1]):  # a new call (or index reused)
            call_id = call_id or f"toolu_{self.message_id}_{index}"
            block: Payload = {
                "type": "tool_use",
                "id": call_id,
                "name": function.get("name") or "",
                "input": {},
            }
            out += self._start_block(f"tool_use:{self._next_index}", block)
            known = self._tools[index] = (self._next_index - 1, str(call_id))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out.append({"type": "content_block_delta", "index": known[0], "delta": delta})
        return out

    def _finish(self, event: Finished) -> list[Payload]:
        self._ended = True
        out = self._stop_block()
        usage = {
            "input_tokens": event.usage.prompt_tokens,
            "output_tokens": event.usage.completion_tokens,
        }
        delta = {"stop_reason": stop_reason_for(event.finish_reason), "stop_sequence": None}
        out.append({"type": "message_delta", "delta": delta, "usage": usage})
        out.append({"type": "message_stop"})
        return out

    # -- SurfaceEncoder -------------------------------------------------------------------
    def encode(self, event: GenEvent) -> list[WireEvent]:
        return [(p["type"], orjson.dumps(p).decode()) for p in self.payloads(event)]

    def end(self) -> list[WireEvent]:
        return []


class AnthropicSurface:
    """The ``anthropic`` surface (``text/event-stream``, named events)."""

    name = "anthropic"
    media_type = "text/event-stream"

    def __init__(self) -> None:
        self.headers: Mapping[str, str] = _HEADERS

    def encoder(self, context: SurfaceContext) -> AnthropicEncoder:
        return AnthropicEncoder(context)


ANTHROPIC = AnthropicSurface()
"""The ``anthropic`` surface (``?format=anthropic``; home surface of ``POST /v1/messages``)."""


class AnthropicMessageCollector:
    """Builds the ``Message`` object of ``stream: false`` from a generation's events, by
    accumulating the surface's own wire events as the SDKs do.

    Tool inputs are the JSON of their argument pieces (``{}`` when none); arguments that are
    not a JSON object (an OpenAI-compatible model can produce such) are kept as text under
    ``{"_invalid_json": ...}``. :meth:`result` raises the generation's error (a
    :class:`GenerationCancelled` for a cancelled one).
    """

    def __init__(self, context: SurfaceContext) -> None:
        self._encoder = AnthropicEncoder(context)
        self._message: Payload | None = None
        self._json: dict[int, list[str]] = {}
        self._stopped = False
        self._error: LLMError | None = None

    def add(self, event: GenEvent) -> None:
        if isinstance(event, Failed):
            self._error = event.error
        elif isinstance(event, Cancelled):
            self._error = GenerationCancelled(event.reason)
        for payload in self._encoder.payloads(event):
            self._accumulate(payload)

    def _accumulate(self, payload: Payload) -> None:
        kind = payload["type"]
        if kind == "message_start":
            self._message = dict(payload["message"], content=[])
            return
        message = self._message
        if message is None:
            return
        if kind == "content_block_start":
            message["content"].append(dict(payload["content_block"]))
        elif kind == "content_block_delta":
            block = message["content"][payload["index"]]
            delta = payload["delta"]
            if delta["type"] == "input_json_delta":
                self._json.setdefault(payload["index"], []).append(delta["partial_json"])
            else:
                field = "text" if delta["type"] == "text_delta" else "thinking"
                block[field] += delta[field]
        elif kind == "message_delta":
            message.update(payload["delta"])
            message["usage"] = dict(message["usage"], **payload["usage"])
        elif kind == "message_stop":
            self._stopped = True

    def result(self) -> Payload:
        """The ``Message`` object; raises the error of a failed or cancelled generation."""
        if self._error is not None:
            raise self._error
        if self._message is None or not self._stopped:
            raise RuntimeError("the generation did not finish")
        for index, pieces in self._json.items():
            self._message["content"][index]["input"] = _tool_input("".join(pieces))
        return self._message


def _tool_input(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"_invalid_json": text}


if TYPE_CHECKING:  # the surface contract, checked by mypy
    _surface: Surface = AnthropicSurface()
    _encoder: SurfaceEncoder = AnthropicEncoder(SurfaceContext("s", "m", 0))
