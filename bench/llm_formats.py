"""The per-token overhead of the AI front-end formats (AI SDK UI message stream, AG-UI) against
OpenAI chat completion chunks, in one run: bytes and CPU time per token, and their ratios.

A generation is written once to a memory log, in its canonical form, then read again and again
in each surface (``chat``, ``ui``, ``agui``; ``native`` for reference) by the real reader
(``surface_events``: parse the log event, encode it, frame it as SSE with its id), the surfaces
taking turns so a load change on a shared machine hits them alike. Reported per surface: CPU
µs per token (minimum and median of ``--rounds`` reads; the minimum is the least disturbed),
SSE bytes per token, and both as ratios to ``chat``. Two kinds of generation: tokens from an
OpenAI-compatible upstream (the chat surface passes each upstream chunk through as it came)
and tokens built by a provider (demo, scripted, local, Anthropic: every surface encodes).

An encoder-only figure (``encode`` of one text token with a text part open, no log, no
framing) is given beside it: the surfaces' own share of the cost.

    PYTHONPATH=src:. python bench/llm_formats.py            # writes results/llm_formats.json
    PYTHONPATH=src:. python bench/llm_formats.py --rounds 5 --tokens 200   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import time
import timeit
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from _common import raw_chunk
from mianzhang.llm import (
    SURFACES,
    ChatRequest,
    Chunk,
    Gateway,
    ModelEntry,
    ModelRegistry,
    SurfaceContext,
    Token,
    Usage,
    surface_events,
)
from mianzhang.llm._openai import parse_chunk
from mianzhang.llm._service import PreparedStream
from mianzhang.log import MemoryEventLog
from mianzhang.log.serve import StreamHost

FORMATS = ("chat", "ui", "agui", "native")
RESULTS = Path(__file__).resolve().parent / "results" / "llm_formats.json"
REQUEST = ChatRequest(messages=[{"role": "user", "content": "benchmark prompt"}])


def token(i: int) -> str | None:
    """The ``i``-th token, 6 characters (``None``: the role chunk before them)."""
    return None if i < 0 else f" tok{i % 100:02d}"


class InstantProvider:
    """``tokens`` chunks at once: upstream chunks (``raw``) or built ones."""

    kind = "openai"

    def __init__(self, tokens: int, raw: bool) -> None:
        self.tokens = tokens
        self.raw = raw

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[Chunk]:
        for i in range(-1 if self.raw else 0, self.tokens):
            yield parse_chunk(raw_chunk(token(i))) if self.raw else Chunk(text=token(i))
        yield Chunk(finish_reason="stop", usage=Usage(3, self.tokens))

    async def aclose(self) -> None:
        return None


async def write_generation(log: MemoryEventLog, tokens: int, raw: bool) -> str:
    """One finished generation in the log (its id)."""
    registry = ModelRegistry(
        [ModelEntry("bench", InstantProvider(tokens, raw), "fake-up")], default_model="bench"
    )
    generation = Gateway(registry).start("bench", REQUEST)
    prepared = PreparedStream("gen-bench", generation, "chat", False, {"include_usage": False})
    host = StreamHost(log)
    await log.create(prepared.stream_id, meta=prepared.meta())
    await host.start(prepared.stream_id, prepared.entries(), background=True)
    async for _ in surface_events(log, prepared.stream_id, SURFACES["chat"]):
        pass  # read to the end: the producer has finished
    await host.aclose()
    return prepared.stream_id


async def read_once(log: MemoryEventLog, stream: str, fmt: str) -> tuple[float, int]:
    """CPU seconds and SSE bytes of one full read of ``stream`` in ``fmt``."""
    total = 0
    start = time.process_time()
    async for item in surface_events(log, stream, SURFACES[fmt]):
        total += len(item) if isinstance(item, bytes) else len(item.encode())
    return time.process_time() - start, total


async def measure(tokens: int, rounds: int, raw: bool) -> dict[str, Any]:
    async with MemoryEventLog() as log:
        stream = await write_generation(log, tokens, raw)
        samples: dict[str, list[float]] = {f: [] for f in FORMATS}
        sizes: dict[str, int] = {}
        for r in range(rounds):
            order = FORMATS if r % 2 == 0 else tuple(reversed(FORMATS))
            for fmt in order:
                cpu, size = await read_once(log, stream, fmt)
                samples[fmt].append(cpu / tokens)
                sizes[fmt] = size
    out: dict[str, Any] = {}
    for fmt in FORMATS:
        out[fmt] = {
            "us_per_token_min": round(min(samples[fmt]) * 1e6, 3),
            "us_per_token_median": round(statistics.median(samples[fmt]) * 1e6, 3),
            "bytes_per_token": round(sizes[fmt] / tokens, 1),
        }
    base = out["chat"]
    for fmt in FORMATS:
        out[fmt]["cpu_ratio_to_chat"] = round(
            out[fmt]["us_per_token_min"] / base["us_per_token_min"], 3
        )
        out[fmt]["bytes_ratio_to_chat"] = round(
            out[fmt]["bytes_per_token"] / base["bytes_per_token"], 3
        )
    return out


def encoder_only(number: int) -> dict[str, float]:
    """µs to encode one text token with a text part open (best of 5), per surface."""
    out: dict[str, float] = {}
    token = Token(Chunk(text=" tok42"), 0.5)
    for fmt in FORMATS:
        encoder = SURFACES[fmt].encoder(SurfaceContext("gen-bench", "bench", 1700000000, {}))
        encoder.encode(Token(Chunk(text="open"), 0.1))  # the text part is open
        best = min(timeit.repeat(lambda e=encoder: e.encode(token), number=number, repeat=5))
        out[fmt] = round(best / number * 1e6, 3)
    return out


def git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = {
        "commit": git_commit(),
        "tokens": args.tokens,
        "rounds": args.rounds,
        "upstream_chunks": asyncio.run(measure(args.tokens, args.rounds, raw=True)),
        "built_chunks": asyncio.run(measure(args.tokens, args.rounds, raw=False)),
        "encoder_only_us_per_token": encoder_only(20_000),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
