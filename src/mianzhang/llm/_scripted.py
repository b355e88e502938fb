"""The ``scripted`` provider: deterministic output chosen by the request, no network, no key.

It exists so front-end developers (and our tests) can exercise every event of their UI, text,
reasoning, streamed tool calls, usage, pauses and errors at a chosen point, through any surface
(OpenAI chat, Responses, AI SDK UI messages, AG-UI), without a model.

What it plays, in this order:

1. **A script in the request.** When the last message is a user message whose text is a JSON
   object with a ``script`` key, that object is the script (format:
   :mod:`mianzhang.llm._script_format`), for example
   ``{"script": [{"words": "Let me check."}, {"tool_call": {"name": "weather", "arguments":
   {"city": "Paris"}}}]}``. Every surface carries the user's text unchanged, so this works
   from ``useChat``'s input box, an AG-UI message or ``curl``. ``{"script": "name"}`` plays a
   stored script. An invalid script fails at once with a non-retryable 400
   (:class:`~mianzhang.UpstreamStatusError`) naming the problem.
2. **A stored script named like the model** (the model's ``upstream_model``): stored scripts
   are given to the provider (``scripts=``, or one ``name.json`` per file with
   :meth:`ScriptedProvider.from_directory`), plus the built-ins :data:`BUILTIN_SCRIPTS`
   (``hostile-markdown``, ``tool-call``, ``reasoning``).
3. **An echo of the conversation**: ``turn 3: you said "..."`` where 3 counts the user
   messages so far (so a test sees that the model got the whole history); after a tool
   result, ``turn 3: tool call_1_0 returned ...``.

Usage is reported on the finish chunk (prompt estimated, one completion token per delta)
unless the script has ``usage`` steps. ``max_tokens`` cuts the output with ``length``.
Closing the iterator stops it at once, also inside a ``sleep``; nothing else is held.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import orjson

from .._errors import (
    ConfigError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from ._retry import retryable_status
from ._script_format import (
    ErrorStep,
    FinishStep,
    Script,
    ScriptError,
    SleepStep,
    Step,
    TextStep,
    ToolCallStep,
    UsageStep,
    parse_script,
    split_words,
)
from ._tokens import estimate_prompt_tokens
from ._types import ChatRequest, Chunk, Usage

__all__ = ["BUILTIN_SCRIPTS", "SCRIPTED_DESCRIPTION", "ScriptedProvider", "echo_script"]

SCRIPTED_DESCRIPTION: Final = (
    "Scripted model (not an LLM): plays the JSON script sent as the last user message, a "
    "stored script named like the model, or echoes the conversation."
)

_HOSTILE: Final[list[Any]] = [
    {"words": "Rendering test with hostile Markdown:"},
    {"text": ["\n\n<img src=x onerr", "or=alert(1)>", " and <scr", "ipt>alert(2)</sc", "ript>"]},
    {"text": "\n\n[a harmless link](javascript:alert(3)) and <javascript:alert(4)>"},
    {"text": '\n\n![image](javascript:alert(5)) <iframe src="javascript:alert(6)"></iframe>'},
    {"text": '\n\n<a href="data:text/html,<script>alert(7)</script>">data link</a>'},
    {"text": "\n\n```html\n<script>alert('inside a code block is fine')</script>\n```\n"},
    {"text": '<div style="position:fixed;inset:0" onclick="alert(8)">overlay</div>'},
]
_TOOL_CALL: Final[list[Any]] = [
    {"words": "Let me look that up."},
    {"tool_call": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}},
]
_REASONING: Final[list[Any]] = [
    {"reasoning": ["The user wants ", "a short answer; ", "keep it brief."]},
    {"words": "Here is a short answer."},
]

BUILTIN_SCRIPTS: Final[Mapping[str, Script]] = MappingProxyType(
    {
        "hostile-markdown": parse_script(_HOSTILE),
        "tool-call": parse_script(_TOOL_CALL),
        "reasoning": parse_script(_REASONING),
    }
)
"""Scripts every scripted provider knows, by name."""


def _text_of(content: Any) -> tuple[str, int]:
    """The text of a message's content and how many non-text parts it has."""
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return "".join(texts), len(content) - len(texts)


def echo_script(messages: list[dict[str, Any]]) -> Script:
    """The default answer: which user turn this is and what the last message said."""
    turn = sum(1 for m in messages if m.get("role") == "user")
    last = messages[-1] if messages else {}
    text, others = _text_of(last.get("content"))
    if last.get("role") == "tool":
        answer = f"turn {turn}: tool {last.get('tool_call_id', '?')} returned {text}"
    else:
        answer = f'turn {turn}: you said "{text}"'
        if others:
            answer += f" and sent {others} attachment{'s' if others > 1 else ''}"
    return Script((TextStep(split_words(answer)),))


def _script_in(messages: list[dict[str, Any]], named: Mapping[str, Script]) -> Script | None:
    """The script sent as the last user message, if it is one (see the module docstring)."""
    if not messages or messages[-1].get("role") != "user":
        return None
    text = _text_of(messages[-1].get("content"))[0].strip()
    if not text.startswith("{"):
        return None
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(raw, dict) or "script" not in raw:
        return None
    try:
        return parse_script(raw, named)
    except ScriptError as exc:
        raise UpstreamStatusError(400, f"invalid script: {exc}", retryable=False) from None


def _error(step: ErrorStep) -> UpstreamError:
    if step.kind == "timeout":
        return UpstreamTimeout(step.message)
    if step.kind == "connect":
        return UpstreamConnectError(step.message)
    if step.kind == "protocol":
        return UpstreamProtocolError(step.message)
    retryable = step.retryable if step.retryable is not None else retryable_status(step.status)
    return UpstreamStatusError(
        step.status, step.message, retryable=retryable, retry_after=step.retry_after
    )


def _argument_pieces(arguments: str, chunks: int) -> list[str]:
    size = max(1, -(-len(arguments) // chunks))  # ceil
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


class ScriptedProvider:
    """Plays scripts (see the module docstring). ``scripts`` are stored scripts by name (JSON
    values as in a file, validated here: :class:`ConfigError` names the bad one); ``sleep``
    is awaited for ``sleep`` steps and delays (tests inject a fake)."""

    kind = "scripted"

    def __init__(
        self,
        *,
        scripts: Mapping[str, Any] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        named = dict(BUILTIN_SCRIPTS)
        for name, raw in (scripts or {}).items():
            try:
                named[name] = parse_script(raw, BUILTIN_SCRIPTS)
            except ScriptError as exc:
                raise ConfigError(f"scripted provider: script {name!r}: {exc}") from None
        self.scripts: Mapping[str, Script] = MappingProxyType(named)
        self._sleep = sleep

    @classmethod
    def from_directory(
        cls, path: str | Path, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> ScriptedProvider:
        """A provider knowing one script per ``*.json`` file of ``path`` (named by its stem)."""
        raw: dict[str, Any] = {}
        for file in sorted(Path(path).glob("*.json")):
            try:
                raw[file.stem] = orjson.loads(file.read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:
                raise ConfigError(f"scripted provider: {str(file)!r}: {exc}") from exc
        return cls(scripts=raw, sleep=sleep)

    def script_for(self, model: str, request: ChatRequest) -> Script:
        """The script a request plays (raises a 400 :class:`UpstreamStatusError` for an
        invalid script in the request)."""
        sent = _script_in(request.messages, self.scripts)
        if sent is not None:
            return sent
        return self.scripts.get(model) or echo_script(request.messages)

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[Chunk]:
        script = self.script_for(model, request)
        turn = sum(1 for m in request.messages if m.get("role") == "user")
        player = _Player(script, request, turn, self._sleep)
        async for chunk in player.play():
            yield chunk

    async def aclose(self) -> None:
        return None


class _Player:
    """One playing of a script: counts deltas for usage and ``max_tokens``."""

    def __init__(
        self,
        script: Script,
        request: ChatRequest,
        turn: int,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.script = script
        self.request = request
        self.turn = turn
        self.sleep = sleep
        self.deltas = 0
        self.tool_index = 0

    def usage(self) -> Usage | None:
        if self.script.reports_usage:
            return None
        return Usage(estimate_prompt_tokens(self.request.messages), self.deltas)

    @property
    def exhausted(self) -> bool:
        limit = self.request.max_tokens
        return limit is not None and self.deltas >= limit

    async def _delta(self) -> None:
        if self.deltas and self.script.delay:
            await self.sleep(self.script.delay)
        self.deltas += 1

    async def play(self) -> AsyncIterator[Chunk]:
        for step in self.script.steps:
            async for chunk in self._step(step):
                yield chunk
            if self.exhausted and isinstance(step, TextStep | ToolCallStep):
                yield Chunk(finish_reason="length", usage=self.usage())
                return
        if not any(isinstance(step, FinishStep) for step in self.script.steps):
            yield Chunk(finish_reason=self.script.finish_reason, usage=self.usage())

    async def _step(self, step: Step) -> AsyncIterator[Chunk]:
        if isinstance(step, SleepStep):
            await self.sleep(step.seconds)
            return
        if isinstance(step, ErrorStep):
            raise _error(step)
        if isinstance(step, UsageStep):
            yield Chunk(usage=step.usage)
            return
        if isinstance(step, FinishStep):
            yield Chunk(finish_reason=step.reason, usage=self.usage())
            return
        async for chunk in self._output(step):
            yield chunk

    async def _output(self, step: TextStep | ToolCallStep) -> AsyncIterator[Chunk]:
        if isinstance(step, TextStep):
            for piece in step.pieces:
                if self.exhausted:
                    return
                await self._delta()
                yield Chunk(reasoning=piece) if step.reasoning else Chunk(text=piece)
            return
        index = self.tool_index
        self.tool_index += 1
        call_id = step.id or f"call_{self.turn}_{index}"
        await self._delta()
        head = {"name": step.name, "arguments": ""}
        yield Chunk(
            tool_calls=[{"index": index, "id": call_id, "type": "function", "function": head}]
        )
        for piece in _argument_pieces(step.arguments, step.chunks):
            await self._delta()
            yield Chunk(tool_calls=[{"index": index, "function": {"arguments": piece}}])
