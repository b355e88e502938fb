"""The script format of the ``scripted`` provider: parsing and validation. No I/O.

A script is a JSON object ``{"script": [step, ...], "delay": seconds}`` (``delay``, default 0,
is slept before every output delta but the first) or ``{"script": "name"}`` naming a stored
script. A bare list of steps is accepted where a script is stored (files, settings). Each step
is an object with exactly one key:

========================  ==================================================================
``{"text": "..."}``       one text delta (a list of strings: one delta each)
``{"words": "..."}``      the text split into word deltas (each keeps its leading space)
``{"reasoning": "..."}``  one reasoning delta (a list: one delta each)
``{"tool_call": {...}}``  ``{"name", "arguments", "id"?, "chunks"?}``: a tool call whose
                          arguments (a JSON value, or a string sent as is) are streamed in
                          ``chunks`` deltas (default 3) after a first delta with id and name
``{"usage": {...}}``      ``{"prompt_tokens", "completion_tokens"}`` reported by the model
``{"sleep": seconds}``    a pause (to test time to first token, stalls, stops mid-answer)
``{"error": {...}}``      raises an upstream error here: ``{"kind": "status" | "timeout" |
                          "connect" | "protocol", "status"?, "message"?, "retryable"?,
                          "retry_after"?}``
``{"finish": "stop"}``    the finish reason (``stop``, ``length``, ``tool_calls``,
                          ``content_filter``); only ``usage`` steps may follow it
========================  ==================================================================

Without a ``finish`` step the script finishes with ``tool_calls`` if it made a tool call,
else ``stop``. Every problem is reported with its place (``script[2].tool_call.name: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ._types import Usage
from ._validation import first_problem

__all__ = [
    "ErrorStep",
    "FinishStep",
    "Script",
    "ScriptError",
    "SleepStep",
    "Step",
    "TextStep",
    "ToolCallStep",
    "UsageStep",
    "parse_script",
    "split_words",
]


class ScriptError(ValueError):
    """A script that does not follow the format (the message says where and why)."""


@dataclass(frozen=True, slots=True)
class TextStep:
    """Text (or reasoning, when ``reasoning``) deltas, in order."""

    pieces: tuple[str, ...]
    reasoning: bool = False


@dataclass(frozen=True, slots=True)
class ToolCallStep:
    """A tool call: ``name`` and ``arguments`` (JSON text) streamed in ``chunks`` deltas."""

    name: str
    arguments: str
    chunks: int
    id: str | None = None


@dataclass(frozen=True, slots=True)
class UsageStep:
    usage: Usage


@dataclass(frozen=True, slots=True)
class SleepStep:
    seconds: float


@dataclass(frozen=True, slots=True)
class ErrorStep:
    """An upstream failure to raise: ``kind`` picks the :class:`UpstreamError` subclass."""

    kind: Literal["status", "timeout", "connect", "protocol"]
    status: int
    message: str
    retryable: bool | None
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class FinishStep:
    reason: str


Step = TextStep | ToolCallStep | UsageStep | SleepStep | ErrorStep | FinishStep


@dataclass(frozen=True, slots=True)
class Script:
    """A parsed script: its steps and the delay slept before each delta but the first."""

    steps: tuple[Step, ...]
    delay: float = 0.0

    @property
    def finish_reason(self) -> str:
        """The reason the script finishes with (its ``finish`` step, or the default)."""
        for step in self.steps:
            if isinstance(step, FinishStep):
                return step.reason
        return "tool_calls" if self.has_tool_calls else "stop"

    @property
    def has_tool_calls(self) -> bool:
        return any(isinstance(step, ToolCallStep) for step in self.steps)

    @property
    def reports_usage(self) -> bool:
        return any(isinstance(step, UsageStep) for step in self.steps)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _ToolCall(_Strict):
    name: str = Field(min_length=1, max_length=256)
    arguments: Any = Field(default_factory=dict)
    id: str | None = Field(default=None, min_length=1, max_length=256)
    chunks: int = Field(default=3, ge=1, le=10_000)


class _Usage(_Strict):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)


class _Error(_Strict):
    kind: Literal["status", "timeout", "connect", "protocol"] = "status"
    status: int = Field(default=500, ge=400, le=599)
    message: str = "scripted upstream error"
    retryable: bool | None = None
    retry_after: float | None = Field(default=None, ge=0)


class _Top(_Strict):
    script: str | list[Any]
    delay: float = Field(default=0.0, ge=0, le=3600)


_Pieces: TypeAdapter[str | list[str]] = TypeAdapter(str | list[str], config=ConfigDict(strict=True))
_FINISH_REASONS: Final = ("stop", "length", "tool_calls", "content_filter")
_STEP_KINDS: Final = ("text", "words", "reasoning", "tool_call", "usage", "sleep", "error")
_MAX_STEPS: Final = 10_000


def _problem(where: str, exc: ValidationError) -> ScriptError:
    place, message = first_problem(where, exc)
    return ScriptError(f"{place}: {message}")


def _pieces(value: Any, where: str) -> tuple[str, ...]:
    try:
        pieces = _Pieces.validate_python(value)
    except ValidationError as exc:
        raise ScriptError(f"{where}: expected a string or a list of strings") from exc
    out = (pieces,) if isinstance(pieces, str) else tuple(pieces)
    if not out:
        raise ScriptError(f"{where}: expected at least one piece")
    return out


def split_words(text: str) -> tuple[str, ...]:
    """``text`` as word pieces, each but the first with its leading space."""
    words = text.split(" ")
    return tuple(w if i == 0 else " " + w for i, w in enumerate(words))


def _words(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, str) or not value:
        raise ScriptError(f"{where}: expected a non-empty string")
    return split_words(value)


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()


def _step(raw: Any, where: str) -> Step:
    """One step from its JSON value (see the module docstring)."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ScriptError(f"{where}: a step is an object with exactly one key")
    ((kind, value),) = raw.items()
    at = f"{where}.{kind}"
    try:
        if kind in ("text", "reasoning"):
            return TextStep(_pieces(value, at), reasoning=kind == "reasoning")
        if kind == "words":
            return TextStep(_words(value, at))
        if kind == "tool_call":
            call = _ToolCall.model_validate(value)
            return ToolCallStep(call.name, _arguments_text(call.arguments), call.chunks, call.id)
        if kind == "usage":
            usage = _Usage.model_validate(value)
            return UsageStep(Usage(usage.prompt_tokens, usage.completion_tokens))
        if kind == "sleep":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ScriptError(f"{at}: expected a number of seconds")
            if not 0 <= value <= 86_400:
                raise ScriptError(f"{at}: expected seconds between 0 and 86400")
            return SleepStep(float(value))
        if kind == "error":
            e = _Error.model_validate(value)
            return ErrorStep(e.kind, e.status, e.message, e.retryable, e.retry_after)
        if kind == "finish":
            if value not in _FINISH_REASONS:
                raise ScriptError(f"{at}: expected one of {', '.join(_FINISH_REASONS)}")
            return FinishStep(value)
    except ValidationError as exc:
        raise _problem(at, exc) from None
    known = ", ".join((*_STEP_KINDS, "finish"))
    raise ScriptError(f"{where}: unknown step {kind!r} (known: {known})")


def _steps(raw: list[Any], where: str) -> tuple[Step, ...]:
    if not raw:
        raise ScriptError(f"{where}: a script needs at least one step")
    if len(raw) > _MAX_STEPS:
        raise ScriptError(f"{where}: more than {_MAX_STEPS} steps")
    steps = tuple(_step(item, f"{where}[{i}]") for i, item in enumerate(raw))
    finished = False
    for i, step in enumerate(steps):
        if finished and not isinstance(step, UsageStep):
            raise ScriptError(f"{where}[{i}]: only usage steps may follow the finish step")
        finished = finished or isinstance(step, FinishStep)
    return steps


def parse_script(raw: Any, named: Mapping[str, Script] | None = None) -> Script:
    """A :class:`Script` from its JSON value: ``{"script": [...] | "name", "delay"?}`` or a
    bare list of steps. ``named`` resolves ``{"script": "name"}``. Raises :class:`ScriptError`
    naming the first problem."""
    if isinstance(raw, list):
        return Script(_steps(raw, "script"))
    try:
        top = _Top.model_validate(raw)
    except ValidationError as exc:
        raise _problem("", exc) from None
    if isinstance(top.script, str):
        found = (named or {}).get(top.script)
        if found is None:
            known = ", ".join(sorted(named or {})) or "none"
            raise ScriptError(f"script: unknown script {top.script!r} (known: {known})")
        return Script(found.steps, top.delay or found.delay)
    return Script(_steps(top.script, "script"), top.delay)
