"""Surfaces: the wire shapes a generation is read in (one encoder per reader).

A generation is written to the event log once, as its gateway events (:data:`GenEvent`:
``Started``, ``Token``, then exactly one ``Finished``, ``Failed`` or ``Cancelled``). Every
protocol a client speaks is a *surface*: OpenAI chat completion chunks, Responses API events,
the native UI stream, Anthropic Messages events, the AI SDK's UI message stream, AG-UI. A
reader picks a surface and runs the log's events through that surface's encoder, so one
generation can be read in several shapes at once, on any instance, and resumed.

Contract of an encoder (checked for every surface by one test suite):

* It is a pure function of the events fed so far (no clock, no randomness, no I/O): feeding
  the same events to a fresh encoder gives the same wire events. A reader resuming in the
  middle of a stream rebuilds the encoder's state by feeding it the events before the resume
  point and dropping what it returns; this is what makes resume exact.
* :meth:`SurfaceEncoder.encode` returns the wire events for one gateway event (possibly none);
  :meth:`SurfaceEncoder.end` the closing wire events after the terminal event (for example
  ``[DONE]``). Every stream therefore ends with the surface's own terminal shape, whether the
  generation finished, failed or was cancelled.
* Wire events are ``(event name or None, data text)``; the reader adds SSE framing and ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from ._types import GenEvent

__all__ = ["Surface", "SurfaceContext", "SurfaceEncoder", "WireEvent", "wire_json"]

WireEvent = tuple[str | None, str]
"""One event of a surface: its SSE ``event:`` name (``None``: a plain ``data:`` event) and its
data text (usually JSON)."""


def wire_json(value: Any) -> str:
    """``value`` as compact JSON text (orjson: UTF-8, no spaces), as every surface writes its
    events and the canonical log its entries."""
    return orjson.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class SurfaceContext:
    """What an encoder knows of its stream before the first event.

    ``stream_id`` is the log stream's id (the completion / response / message id clients see);
    ``options`` are the options of the surface the generation was started from (for example
    ``include_usage`` of a chat completion, the echoed parameters of a Responses request, the
    ``threadId``/``runId`` of an AG-UI run). A reader of another surface gets that surface's
    defaults (``options`` empty).
    """

    stream_id: str
    model: str
    created: int
    options: Mapping[str, Any] = field(default_factory=dict)


class SurfaceEncoder(Protocol):
    """Encodes one generation's gateway events in one surface (see the module docstring)."""

    def encode(self, event: GenEvent) -> list[WireEvent]: ...

    def end(self) -> list[WireEvent]: ...


class Surface(Protocol):
    """A wire shape of generations, selected by ``name`` (``chat``, ``responses``, ``native``,
    ``anthropic``, ``ui``, ``agui``)."""

    name: str
    media_type: str
    headers: Mapping[str, str]

    def encoder(self, context: SurfaceContext) -> SurfaceEncoder: ...
