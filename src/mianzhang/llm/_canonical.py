"""A generation in the event log: its gateway events, one log event each (the canonical form).

A generation's log stream is written once, by its producer, in this form; every client shape
(a *surface*: chat chunks, Responses events, the native UI stream, ...) is encoded from it at
read time (``_reader.py``). Serializing and parsing live here, together, so they cannot drift;
``tests/llm/test_canonical.py`` checks that every event survives the round trip.

Schema
------
The log event's name says what it is; its data is compact JSON (orjson). Optional keys are left
out when empty; a reader ignores keys it does not know (an older instance reading a newer
writer's stream keeps working).

``gen.start`` (first event) — :class:`~mianzhang.llm.Started` plus how the generation was
asked for::

    {"model": str, "created": int, "provider": str, "description": str,
     "surface": str,            # the home surface: chat, responses, native, ...
     "options": {...}}          # that surface's options (e.g. include_usage, background)

``gen.token`` — one :class:`~mianzhang.llm.Token`; its chunk's fields by name::

    {"t": float,                # seconds since the start (gateway clock), optional
     "text": str, "reasoning": str, "tool_calls": [...], "finish_reason": str,
     "role": str, "usage": USAGE}

  followed, for a chunk of an OpenAI upstream, by a line break and that chunk's JSON text
  byte for byte (the chat surface passes it through; kept outside the JSON so it is neither
  escaped when written nor unescaped when read; the record itself never holds a line break).

``gen.finish`` — :class:`~mianzhang.llm.Finished`::

    {"finish_reason": str, "usage": USAGE, "timings": TIMINGS, "provider": str,
     "upstream_model": str, "usage_reported": bool, "completed_at": int}

``gen.error`` — :class:`~mianzhang.llm.Failed`: ``{"error": ERROR, "usage", "timings",
"partial"}``; ``gen.cancelled`` — :class:`~mianzhang.llm.Cancelled`: ``{"reason", "usage",
"timings", "partial"}`` (written by the producer runner's ``closing`` hook).

``USAGE`` is ``{"prompt_tokens", "completion_tokens", "estimated"?}``; ``TIMINGS`` is
``{"time_to_first_token": float|null, "duration": float, "output_tokens": int}``; ``ERROR`` is
``{"kind", "message", ...}`` with the fields that rebuild the same :class:`LLMError` subclass
(``status``, ``retryable``, ``retry_after``, ``param``, ``model``, ``reason``;
``_canonical_errors.py``), so every surface describes it exactly as it would the live error. An
upstream error's response body is not stored.

The producer runner's own ``error`` event (``{"type", "message"}``, a producer that crashed) is
read as a ``Failed`` generation, so every surface still ends with its failure shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .._errors import LLMError
from ..log import LogEntry
from ._canonical_errors import error_from_json, error_json
from ._surface import wire_json
from ._types import Cancelled, Chunk, Failed, Finished, GenEvent, Started, Timings, Token, Usage

__all__ = [
    "CANCELLED",
    "ERROR",
    "FINISH",
    "START",
    "TOKEN",
    "StartRecord",
    "event_entry",
    "parse_event",
    "record_from_meta",
    "start_entry",
    "start_meta",
    "token_entry",
]

START = "gen.start"
TOKEN = "gen.token"
FINISH = "gen.finish"
ERROR = "gen.error"
CANCELLED = "gen.cancelled"
RUNNER_ERROR = "error"  # the producer runner's event for a crashed producer

_CHUNK_FIELDS = frozenset(
    {"text", "reasoning", "tool_calls", "finish_reason", "role", "usage", "raw"}
)


@dataclass(frozen=True, slots=True)
class StartRecord:
    """The ``gen.start`` event: the ``Started`` event, the home surface and its options."""

    started: Started
    surface: str
    options: Mapping[str, Any] = field(default_factory=dict)


# -- pieces ------------------------------------------------------------------------------------
def _usage_json(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
    }
    if usage.estimated:
        out["estimated"] = True
    return out


def _usage(value: Any) -> Usage:
    return Usage(
        int(value["prompt_tokens"]),
        int(value["completion_tokens"]),
        estimated=bool(value.get("estimated", False)),
    )


def _timings_json(timings: Timings) -> dict[str, Any]:
    return {
        "time_to_first_token": timings.time_to_first_token,
        "duration": timings.duration,
        "output_tokens": timings.output_tokens,
    }


def _timings(value: Any) -> Timings:
    ttft = value.get("time_to_first_token")
    return Timings(
        None if ttft is None else float(ttft),
        float(value["duration"]),
        int(value["output_tokens"]),
    )


# -- writing -----------------------------------------------------------------------------------
def start_entry(started: Started, surface: str, options: Mapping[str, Any]) -> LogEntry:
    """The ``gen.start`` entry."""
    body = {
        "model": started.model,
        "created": started.created,
        "provider": started.provider,
        "description": started.description,
        "surface": surface,
        "options": dict(options),
    }
    return LogEntry(wire_json(body), START)


def token_entry(token: Token) -> LogEntry:
    """The ``gen.token`` entry of ``token`` (the writer's hot path)."""
    chunk = token.chunk
    body: dict[str, Any] = {}
    if token.elapsed is not None:
        body["t"] = token.elapsed
    if chunk.text:
        body["text"] = chunk.text
    if chunk.reasoning:
        body["reasoning"] = chunk.reasoning
    if chunk.tool_calls is not None:
        body["tool_calls"] = chunk.tool_calls
    if chunk.finish_reason is not None:
        body["finish_reason"] = chunk.finish_reason
    if chunk.role is not None:
        body["role"] = chunk.role
    if chunk.usage is not None:
        body["usage"] = _usage_json(chunk.usage)
    data = orjson.dumps(body).decode()
    raw = chunk.raw
    return LogEntry(data if raw is None else f"{data}\n{raw}", TOKEN)


def _finish_entry(event: Finished) -> LogEntry:
    body = {
        "finish_reason": event.finish_reason,
        "usage": _usage_json(event.usage),
        "timings": _timings_json(event.timings),
        "provider": event.provider,
        "upstream_model": event.upstream_model,
        "usage_reported": event.usage_reported,
        "completed_at": event.completed_at,
    }
    return LogEntry(wire_json(body), FINISH)


def _ended_entry(event: Failed | Cancelled) -> LogEntry:
    body: dict[str, Any] = {
        "usage": _usage_json(event.usage),
        "timings": _timings_json(event.timings),
        "partial": event.partial,
    }
    if isinstance(event, Failed):
        body["error"] = error_json(event.error)
        return LogEntry(wire_json(body), ERROR)
    body["reason"] = event.reason
    return LogEntry(wire_json(body), CANCELLED)


def event_entry(event: GenEvent) -> LogEntry:
    """The log entry of one gateway event (``Started`` without a surface: see
    :func:`start_entry` for the generation's real first entry)."""
    if type(event) is Token:  # the hot path
        return token_entry(event)
    if isinstance(event, Started):
        return start_entry(event, "", {})
    if isinstance(event, Finished):
        return _finish_entry(event)
    assert isinstance(event, Failed | Cancelled)
    return _ended_entry(event)


# -- reading -----------------------------------------------------------------------------------
def _parse_start(body: dict[str, Any]) -> StartRecord:
    started = Started(
        str(body["model"]),
        int(body["created"]),
        str(body.get("provider", "")),
        str(body.get("description", "")),
    )
    options = body.get("options")
    return StartRecord(
        started, str(body.get("surface", "")), options if isinstance(options, dict) else {}
    )


def _parse_token(data: str) -> Token:
    """The hot path of every reader: one token's record (and raw chunk)."""
    record, newline, raw = data.partition("\n")
    body = orjson.loads(record)
    elapsed = body.pop("t", None)
    if newline:
        body["raw"] = raw
    usage = body.get("usage")
    if usage is not None:
        body["usage"] = _usage(usage)
    try:
        chunk = Chunk(**body)
    except TypeError:  # keys of a newer writer: keep what this version knows
        chunk = Chunk(**{k: v for k, v in body.items() if k in _CHUNK_FIELDS})
    return Token(chunk, elapsed)


def _parse_finish(body: dict[str, Any]) -> Finished:
    completed = body.get("completed_at")
    return Finished(
        str(body["finish_reason"]),
        _usage(body["usage"]),
        _timings(body["timings"]),
        provider=str(body.get("provider", "")),
        upstream_model=str(body.get("upstream_model", "")),
        usage_reported=bool(body.get("usage_reported", False)),
        completed_at=None if completed is None else int(completed),
    )


def _parse_error(body: dict[str, Any]) -> Failed:
    return Failed(
        error_from_json(body["error"]),
        _usage(body["usage"]),
        _timings(body["timings"]),
        partial=bool(body.get("partial", False)),
    )


def _parse_cancelled(body: dict[str, Any]) -> Cancelled:
    return Cancelled(
        str(body.get("reason", "cancelled")),
        _usage(body["usage"]),
        _timings(body["timings"]),
        partial=bool(body.get("partial", False)),
    )


def _parse_runner_error(body: dict[str, Any]) -> Failed:
    message = str(body.get("message", "the producer failed on the server"))
    return Failed(LLMError(message), Usage(), Timings(None, 0.0, 0), partial=False)


_PARSERS: dict[str, Callable[[dict[str, Any]], GenEvent | StartRecord]] = {
    START: _parse_start,
    FINISH: _parse_finish,
    ERROR: _parse_error,
    CANCELLED: _parse_cancelled,
    RUNNER_ERROR: _parse_runner_error,
}


def parse_event(name: str | None, data: str) -> GenEvent | StartRecord | None:
    """The gateway event (or the start record) stored as log event ``name``/``data``;
    ``None`` for an event that is not part of a generation. Raises ``ValueError`` for a
    generation event whose data is malformed."""
    try:
        if name == TOKEN:
            return _parse_token(data)
        parser = _PARSERS.get(name) if name is not None else None
        return None if parser is None else parser(orjson.loads(data))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"malformed {name} event: {data[:100]!r}") from exc


# -- stream metadata (what a reader falls back on when the start event is gone) ---------------
def start_meta(record: StartRecord) -> dict[str, str]:
    """The log stream's metadata for a generation (strings only)."""
    started = record.started
    return {
        "kind": f"llm.{record.surface}",
        "model": started.model,
        "created": str(started.created),
        "provider": started.provider,
        "description": started.description,
        "options": wire_json(dict(record.options)),
    }


def record_from_meta(meta: Mapping[str, str]) -> StartRecord | None:
    """The start record kept in a generation stream's metadata; ``None`` if the stream is
    not a generation."""
    kind = meta.get("kind", "")
    if not kind.startswith("llm.") or "model" not in meta:
        return None
    try:
        created = int(meta.get("created", "0"))
        options = orjson.loads(meta.get("options", "{}"))
    except (ValueError, orjson.JSONDecodeError):
        return None
    started = Started(meta["model"], created, meta.get("provider", ""), meta.get("description", ""))
    return StartRecord(started, kind[4:], options if isinstance(options, dict) else {})
