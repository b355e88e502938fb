"""The built-in ``summarize`` job: a document cut into chunks, each summarised through the LLM
gateway, then the summaries combined (map-reduce) into one.

Progress: ``percent`` counts finished LLM calls out of all the calls the job will make
(known in advance: ``n`` chunk calls, then ``ceil(n / fan_in)`` calls per reduce round until
one summary is left), with smaller steps while a call streams tokens (at most every
``progress_interval`` seconds). Each chunk's summary is published as a ``partial`` event
``{"stage": "chunk", "index", "chunks", "summary"}`` (``stage: "combine"`` for reduce rounds)
as soon as it is ready. A failed LLM call fails the job with that error; cancelling the job
closes the generation in flight (its provider stops at once).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from contextlib import aclosing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..llm import ChatRequest, Failed, Gateway, Token
from ._context import JobContext

__all__ = ["SummarizeInput", "prepare_summarize", "split_text", "summarize", "summarize_plan"]

FAN_IN = 8
_CHUNK_PROMPT = (
    "Summarise the following part ({index} of {total}) of a document in a few sentences. "
    "Keep names, numbers and conclusions."
)
_COMBINE_PROMPT = (
    "These are summaries of consecutive parts of one document. Combine them into one "
    "concise summary of the whole document."
)


class SummarizeInput(BaseModel):
    """``text`` to summarise; ``chunk_chars`` the longest chunk sent in one call;
    ``model`` (default: the gateway's default model); ``max_tokens`` per summary."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=1_000_000)
    chunk_chars: int = Field(default=4000, ge=200, le=200_000)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    max_tokens: int = Field(default=256, ge=1, le=8192)
    progress_interval: float = Field(default=0.5, ge=0.05, le=60)


# paragraph breaks, then sentence ends, then any whitespace; then a hard cut
_LEVELS = (
    re.compile(r"\n\s*\n"),
    re.compile(r"(?<=[.!?;。！？；])\s+"),
    re.compile(r"\s+"),
)
_JOINERS = ("\n\n", " ", " ")


def split_text(text: str, size: int) -> list[str]:
    """``text`` cut into chunks of at most ``size`` characters, at paragraph breaks where
    possible, else at sentence ends, else between words; a single word longer than ``size``
    is cut inside. Chunks are stripped and never empty; the non-whitespace characters of all
    chunks, in order, are exactly those of ``text``."""
    if size < 1:
        raise ValueError("size must be >= 1")
    return _split(text.strip(), size, 0)


def _split(text: str, size: int, level: int) -> list[str]:
    if len(text) <= size:
        return [text] if text else []
    if level == len(_LEVELS):
        return [text[i : i + size] for i in range(0, len(text), size)]
    parts = [p.strip() for p in _LEVELS[level].split(text)]
    parts = [p for p in parts if p]
    if len(parts) == 1:
        return _split(parts[0], size, level + 1)
    joiner = _JOINERS[level]
    chunks: list[str] = []
    current = ""
    for part in parts:
        if len(part) > size:
            if current:
                chunks.append(current)
                current = ""
            chunks.extend(_split(part, size, level + 1))
            continue
        candidate = f"{current}{joiner}{part}" if current else part
        if len(candidate) <= size:
            current = candidate
        else:
            chunks.append(current)
            current = part
    if current:
        chunks.append(current)
    return chunks


def summarize_plan(chunks: int, fan_in: int = FAN_IN) -> list[int]:
    """How many LLM calls each round makes: ``[chunks, reduce1, reduce2, ...]`` until one
    summary is left (``[1]`` for a single chunk)."""
    rounds = [chunks]
    while rounds[-1] > 1:
        rounds.append(math.ceil(rounds[-1] / fan_in))
    return rounds


async def prepare_summarize(
    job_input: dict[str, Any], resources: Mapping[str, Any]
) -> dict[str, Any]:
    """At submission: the model must be configured (``ModelNotFound``, a 404, otherwise)."""
    gateway = resources.get("llm")
    if isinstance(gateway, Gateway):
        gateway.registry.get(job_input.get("model") or gateway.registry.default_model)
    return job_input


class _Progress:
    """Turns "call k of N, t tokens so far" into throttled progress reports."""

    def __init__(self, ctx: JobContext, total_calls: int, max_tokens: int, interval: float):
        self.ctx = ctx
        self.total = total_calls
        self.max_tokens = max_tokens
        self.interval = interval
        self.done = 0
        self._last = time.monotonic()

    async def streaming(self, tokens: int, message: str) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        fraction = min(0.95, tokens / self.max_tokens)
        await self.ctx.progress(100 * (self.done + fraction) / self.total, message)

    async def finished_call(self, message: str) -> None:
        self.done += 1
        self._last = time.monotonic()
        await self.ctx.progress(100 * self.done / self.total, message)


async def _complete(
    gateway: Gateway,
    args: SummarizeInput,
    messages: list[dict[str, Any]],
    progress: _Progress,
    label: str,
    usage: dict[str, int],
) -> str:
    generation = gateway.start(args.model, ChatRequest(messages, max_tokens=args.max_tokens))
    parts: list[str] = []
    async with aclosing(generation.events()) as events:
        async for event in events:
            if isinstance(event, Token):
                parts.append(event.chunk.text)
                await progress.streaming(len(parts), f"{label}: {len(parts)} tokens")
            elif isinstance(event, Failed):
                raise event.error
    used = generation.usage
    usage["prompt_tokens"] += used.prompt_tokens
    usage["completion_tokens"] += used.completion_tokens
    return "".join(parts).strip()


async def summarize(ctx: JobContext) -> dict[str, Any]:
    """Summarise a document chunk by chunk through the LLM gateway, then combine."""
    args = SummarizeInput.model_validate(ctx.input)
    gateway = ctx.resources.get("llm")
    if not isinstance(gateway, Gateway):
        raise RuntimeError("no LLM gateway in this worker's resources ('llm')")
    chunks = split_text(args.text, args.chunk_chars)
    plan = summarize_plan(len(chunks))
    progress = _Progress(ctx, sum(plan), args.max_tokens, args.progress_interval)
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    await ctx.progress(0, f"{len(chunks)} chunk(s), {sum(plan)} LLM call(s)")
    summaries: list[str] = []
    for index, chunk in enumerate(chunks, 1):
        label = f"chunk {index}/{len(chunks)}"
        system = _CHUNK_PROMPT.format(index=index, total=len(chunks))
        messages = [{"role": "system", "content": system}, {"role": "user", "content": chunk}]
        summary = await _complete(gateway, args, messages, progress, label, usage)
        summaries.append(summary)
        await ctx.partial(
            {"stage": "chunk", "index": index, "chunks": len(chunks), "summary": summary}
        )
        await progress.finished_call(f"{label} summarised")
    for round_no, calls in enumerate(plan[1:], 1):
        combined: list[str] = []
        for index in range(calls):
            group = summaries[index * FAN_IN : (index + 1) * FAN_IN]
            label = f"combining {index + 1}/{calls} (round {round_no})"
            joined = "\n\n".join(f"Part {i}: {s}" for i, s in enumerate(group, 1))
            messages = [
                {"role": "system", "content": _COMBINE_PROMPT},
                {"role": "user", "content": joined},
            ]
            summary = await _complete(gateway, args, messages, progress, label, usage)
            combined.append(summary)
            await ctx.partial(
                {"stage": "combine", "round": round_no, "index": index + 1, "summary": summary}
            )
            await progress.finished_call(f"{label} done")
        summaries = combined
    return {
        "summary": summaries[0],
        "chunks": len(chunks),
        "llm_calls": sum(plan),
        "model": args.model or gateway.registry.default_model,
        "usage": usage,
    }
